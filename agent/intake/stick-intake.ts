// The sticks the agent sees: a stick's packages are listed (in the stick's own process, with
// a deadline) and queued up to the per-stick limit; when all of them are answered, the
// stick's reports are written and flushed, and only then does the LED show the result.
//
// LED: slow blink while any stick's packages are queued or running; when a stick's
// packages are all done, steady on (all OK / already installed) or fast blink (anything
// failed, or no package on the stick) until that stick is removed. Inbox work does not
// touch the LED.
import { basename } from 'node:path';
import type { AgentConfig } from '../config/agent.js';
import type { UpdateResult } from '../pipeline/types.js';
import type { Led, LedState } from '../report/led.js';
import { NO_PACKAGE_NOTE, batchSucceeded, tooManyPackagesNote, type Delivery, type StickReports } from '../report/stick.js';
import { StickTimeoutError } from '../report/stick-io.js';
import type { AgentLog } from './log.js';
import { listStickPackages, type MediaEvent } from './media.js';
import { isMountPoint } from './mounts.js';
import type { QueueJob, UpdateQueue } from './queue.js';
import { failureResult } from './results.js';

interface Batch {
  total: number;
  remaining: number;
  /** Packages found beyond intake.max_packages_per_stick (not taken). */
  found?: number;
  firstLeftOut?: string;
}

interface Stick {
  uuid: string;
  mountpoint: string;
  present: boolean;
  /** The stick stopped answering: nothing more is read from or written to it. */
  hung?: boolean;
  batch?: Batch;
  result?: 'success' | 'failure';
}

export interface StickDone {
  uuid: string;
  delivery: Delivery;
  led: 'success' | 'failure';
}

export interface StickIntakeOptions {
  config: AgentConfig;
  queue: UpdateQueue;
  reports: StickReports;
  led: Led;
  log: AgentLog;
  /** Aborted when the agent stops: stick jobs in flight are given up (their children killed). */
  signal: AbortSignal;
  /** True once the agent is stopping: nothing more is started. */
  stopping: () => boolean;
  /** Every pipeline answer for a stick's package (the agent logs and announces it). */
  onResult: (result: UpdateResult) => void;
  onDone: (done: StickDone) => void;
  onRemoved: (uuid: string) => void;
}

export class StickIntake {
  private readonly sticks = new Map<string, Stick>();

  constructor(private readonly o: StickIntakeOptions) {}

  onMedia(e: MediaEvent): void {
    if (this.o.stopping()) return;
    if (e.action === 'remove') {
      const stick = this.sticks.get(e.uuid);
      if (stick) {
        stick.present = false;
        this.sticks.delete(e.uuid);
      }
      this.o.log.info('stick removed', { uuid: e.uuid });
      this.refreshLed();
      this.o.onRemoved(e.uuid);
      return;
    }
    if (this.sticks.get(e.uuid)?.present) return; // already seen (repeated event or start-up scan)
    if (!safeIsMountPoint(e.mountpoint)) {
      this.o.log.warn('media event for a stick that is not mounted; ignored', { uuid: e.uuid });
      return;
    }
    const stick: Stick = { uuid: e.uuid, mountpoint: e.mountpoint, present: true };
    this.sticks.set(e.uuid, stick);
    // the LED shows "working" once packages are queued, as before the listing moved out of
    // the process (a stick that does not answer goes from idle to failure)
    void this.takeStick(stick);
  }

  refreshLed(): void {
    if (this.o.stopping()) return;
    let state: LedState = 'idle';
    const sticks = [...this.sticks.values()];
    if (sticks.some((s) => s.batch)) state = 'working';
    else if (sticks.some((s) => s.result === 'failure')) state = 'failure';
    else if (sticks.some((s) => s.result === 'success')) state = 'success';
    this.o.led.set(state);
  }

  /** List the stick (in its own process, with a deadline) and queue up to the per-stick limit. */
  private async takeStick(stick: Stick): Promise<void> {
    let packages: string[] = [];
    try {
      packages = await listStickPackages(stick.mountpoint, this.o.config.stickTimeoutMs, this.o.signal);
    } catch (err) {
      if (err instanceof StickTimeoutError) stick.hung = true;
      this.o.log.warn(stick.hung ? 'the stick does not answer; it is not used' : 'cannot list the stick', { uuid: stick.uuid, error: String(err) });
    }
    if (this.o.stopping() || !stick.present) return;
    const limit = this.o.config.maxPackagesPerStick;
    const taken = packages.slice(0, limit);
    const batch: Batch = { total: taken.length, remaining: taken.length };
    if (packages.length > limit) {
      batch.found = packages.length;
      batch.firstLeftOut = basename(packages[limit]!);
      this.o.log.warn('too many packages on the stick; the rest are not taken', { uuid: stick.uuid, found: packages.length, limit });
    }
    this.o.log.info('stick inserted', { uuid: stick.uuid, packages: packages.length });
    stick.batch = batch;
    for (const p of taken) {
      const job: QueueJob = {
        key: `usb:${stick.uuid}:${p}`,
        request: { packagePath: p, source: 'usb', mediumUuid: stick.uuid },
        cancelled: () => !stick.present,
        done: (o) => this.jobDone(stick, batch, job, o),
      };
      if (!this.o.queue.push(job)) batch.remaining--;
    }
    if (batch.remaining === 0) void this.finishBatch(stick, batch);
    this.refreshLed();
  }

  private jobDone(stick: Stick, batch: Batch, job: QueueJob, o: { result?: UpdateResult; error?: unknown; skipped?: boolean }): void {
    const result = o.result ?? (o.error !== undefined ? failureResult(job.request, o.error) : undefined);
    if (result) {
      this.o.reports.record(stick.uuid, result);
      this.o.onResult(result);
    } else {
      this.o.log.info('stick removed before its package ran; skipped', { uuid: stick.uuid, file: job.request.packagePath });
    }
    batch.remaining--;
    if (batch.remaining === 0) void this.finishBatch(stick, batch);
  }

  private async finishBatch(stick: Stick, batch: Batch): Promise<void> {
    if (!stick.present) {
      if (stick.batch === batch) stick.batch = undefined;
      this.o.log.warn('stick removed before its report was written; report kept for its next insertion', { uuid: stick.uuid });
      this.refreshLed();
      return;
    }
    const delivery = await this.deliver(stick, batch);
    // the LED kept blinking while the reports were written
    if (stick.batch === batch) stick.batch = undefined;
    if (this.o.stopping()) return;
    if (delivery.error instanceof StickTimeoutError) stick.hung = true;
    if (!delivery.written) {
      this.o.log.warn('cannot write the report to the stick; kept for its next insertion', {
        uuid: stick.uuid,
        error: String(delivery.error),
      });
    }
    // only now, with the report flushed (or kept), does the LED show the result
    const led = batchSucceeded(delivery.results) && batch.found === undefined && !stick.hung ? 'success' : 'failure';
    stick.result = led;
    this.refreshLed();
    this.o.onDone({ uuid: stick.uuid, delivery, led });
  }

  /** Write the stick's reports (with a note for a stick without packages or with too many). */
  private async deliver(stick: Stick, batch: Batch): Promise<Delivery> {
    const reports = this.o.reports;
    if (stick.hung) return { results: reports.pending(stick.uuid), written: false, error: new Error('the stick does not answer') };
    let note: string | undefined;
    if (batch.found !== undefined) note = tooManyPackagesNote(batch.found, this.o.config.maxPackagesPerStick, batch.firstLeftOut!);
    else if (batch.total === 0 && reports.pending(stick.uuid).length === 0) note = NO_PACKAGE_NOTE;
    return reports.deliver(stick.uuid, stick.mountpoint, note, this.o.signal);
  }
}

export function safeIsMountPoint(dir: string): boolean {
  try {
    return isMountPoint(dir);
  } catch {
    return false;
  }
}
