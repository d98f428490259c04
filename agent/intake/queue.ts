// One update at a time, first in first out, across the USB and inbox paths. A job is
// keyed by where its package was found; the same occurrence queued twice (a repeated
// watcher event) runs once. Two occurrences of the same package (two sticks, stick plus
// inbox) are two jobs: both run, in order, and the pipeline's once-only check answers
// the second with "already installed".
import type { UpdateRequest, UpdateResult } from '../pipeline/types.js';

export interface QueueJob {
  /** Identity of this occurrence, e.g. "usb:<uuid>:<file>" or "inbox:<path>". */
  key: string;
  request: UpdateRequest;
  /** Checked right before the job starts; true drops it (e.g. its stick was removed). */
  cancelled?: () => boolean;
  /** Called once with the pipeline's answer (or why it could not run). */
  done: (outcome: { result?: UpdateResult; error?: unknown; skipped?: boolean }) => void | Promise<void>;
}

export type Runner = (req: UpdateRequest) => Promise<UpdateResult>;

export class UpdateQueue {
  private readonly jobs: QueueJob[] = [];
  private readonly keys = new Set<string>();
  private running: QueueJob | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly runner: Runner,
    private readonly onChange: () => void = () => {},
  ) {}

  /** Queue a job; false when the same occurrence is already queued or running, or the queue stopped. */
  push(job: QueueJob): boolean {
    if (this.stopped || this.keys.has(job.key)) return false;
    this.keys.add(job.key);
    this.jobs.push(job);
    this.onChange();
    if (!this.loop) this.loop = this.work();
    return true;
  }

  get size(): number {
    return this.jobs.length;
  }

  get current(): QueueJob | undefined {
    return this.running;
  }

  get busy(): boolean {
    return this.running !== undefined || this.jobs.length > 0;
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Take no more jobs, drop the queued ones, let the running one finish. */
  async stop(): Promise<QueueJob[]> {
    this.stopped = true;
    const dropped = this.jobs.splice(0);
    for (const j of dropped) this.keys.delete(j.key);
    await this.loop;
    return dropped;
  }

  private async work(): Promise<void> {
    try {
      for (let job = this.jobs.shift(); job; job = this.jobs.shift()) {
        this.running = job;
        this.onChange();
        let outcome: { result?: UpdateResult; error?: unknown; skipped?: boolean };
        if (job.cancelled?.()) {
          outcome = { skipped: true };
        } else {
          try {
            outcome = { result: await this.runner(job.request) };
          } catch (error) {
            outcome = { error };
          }
        }
        try {
          await job.done(outcome);
        } catch {
          // a failing callback must not stop the queue; callbacks log their own errors
        }
        this.keys.delete(job.key);
        this.running = undefined;
        this.onChange();
      }
    } finally {
      this.loop = undefined;
      const waiters = this.idleWaiters.splice(0);
      for (const w of waiters) w();
    }
  }
}
