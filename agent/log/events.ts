// Progress as events: the same calls the pipeline makes on its Progress (bytes of the
// image import, the health-window countdown) re-emitted for listeners such as the local
// status page, and passed on to the terminal's Progress unchanged.
import { EventEmitter } from 'node:events';
import type { Progress } from './progress.js';

export type ProgressEvent =
  | { kind: 'bytes'; phase: string; done: number; total: number; at: number }
  | { kind: 'countdown'; phase: string; seconds_left: number; note?: string; at: number }
  | { kind: 'done'; at: number };

/** Emits 'progress' (ProgressEvent). */
export class ProgressBus extends EventEmitter {
  emitProgress(e: ProgressEvent): void {
    this.emit('progress', e);
  }
}

export function emittingProgress(bus: ProgressBus, inner?: Progress): Progress {
  return {
    bytes(phase, done, total, part) {
      inner?.bytes(phase, done, total, part);
      bus.emitProgress({ kind: 'bytes', phase, done, total, at: Date.now() });
    },
    countdown(phase, secondsLeft, note) {
      inner?.countdown(phase, secondsLeft, note);
      bus.emitProgress({ kind: 'countdown', phase, seconds_left: secondsLeft, ...(note ? { note } : {}), at: Date.now() });
    },
    done() {
      inner?.done();
      bus.emitProgress({ kind: 'done', at: Date.now() });
    },
  };
}
