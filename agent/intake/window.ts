// The inbox maintenance window: opens at each match of a cron expression (node-cron
// syntax, local time) and stays open for a fixed length. Inbox packages that are complete
// outside the window wait for the next opening; USB packages never wait.
import { createTask, type ScheduledTask } from 'node-cron';

export class MaintenanceWindow {
  private task: ScheduledTask | undefined;
  private readonly probe: ScheduledTask;
  private readonly stepMs: number;

  constructor(
    readonly cron: string,
    readonly durationMs: number,
    private readonly onOpen: () => void,
  ) {
    // an unstarted task is only used for match(): it never fires
    this.probe = createTask(cron, () => {});
    this.stepMs = cron.trim().split(/\s+/).length === 6 ? 1000 : 60_000;
  }

  /** True when the most recent opening (a cron match) is less than durationMs ago. */
  isOpen(now: Date = new Date()): boolean {
    const t = Math.floor(now.getTime() / this.stepMs) * this.stepMs;
    for (let at = t; at > now.getTime() - this.durationMs; at -= this.stepMs) {
      if (this.probe.match(new Date(at))) return true;
    }
    return false;
  }

  start(): void {
    if (this.task) return;
    this.task = createTask(this.cron, () => this.onOpen(), { name: 'caisson-maintenance-window', noOverlap: true });
    void this.task.start();
  }

  async stop(): Promise<void> {
    const t = this.task;
    this.task = undefined;
    if (t) await t.destroy();
    await this.probe.destroy();
  }
}
