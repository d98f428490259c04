// The autonomous agent: sticks and the inbox in, one update at a time through the
// pipeline, an LED and reports out. The pipeline is handed in (cli/agent-command.ts opens the real
// one; unit tests may pass a small fake), so this file holds only the intake logic: start and
// stop, recovery, schedules and the inbox here; the sticks and the LED in stick-intake.ts.
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createTask, type ScheduledTask } from 'node-cron';
import type { AgentConfig } from '../config/agent.js';
import type { EnsureRunningResult } from '../pipeline/ensure-running.js';
import type { UpdateRequest, UpdateResult } from '../pipeline/types.js';
import type { Db } from '../store/db.js';
import { Journal } from '../store/journal.js';
import { Led } from '../report/led.js';
import { StickReports } from '../report/stick.js';
import { cleanStaging, pruneHistory } from './housekeeping.js';
import { InboxWatcher } from './inbox.js';
import { stderrLog, type AgentLog } from './log.js';
import { MediaWatcher } from './media.js';
import { UpdateQueue, type QueueJob } from './queue.js';
import { failureResult } from './results.js';
import { StickIntake, safeIsMountPoint, type StickDone } from './stick-intake.js';
import { MaintenanceWindow } from './window.js';

export type { StickDone } from './stick-intake.js';

/** What the agent needs from the pipeline (agent/pipeline/index.ts `Pipeline` fits). */
export interface AgentPipeline {
  run(req: UpdateRequest): Promise<UpdateResult>;
  recover(): Promise<UpdateResult[]>;
  /** Start services an engine restart left stopped (agent/pipeline/ensure-running.ts). */
  ensureRunning?(): Promise<EnsureRunningResult[]>;
  db: Db;
}

export interface AgentOptions {
  log?: AgentLog;
  /** Housekeeping and the maintenance window use real cron tasks unless false (tests). */
  schedules?: boolean;
  /** The device's ID and public key, for the reports. */
  device?: { id: string; public_key: string };
}

export interface InboxDone {
  file: string;
  result: UpdateResult;
  movedTo: string;
}

/**
 * Events: 'result' (UpdateResult) after every pipeline answer; 'stick-done' (StickDone)
 * after a stick's reports were written (or kept pending); 'inbox-done' (InboxDone);
 * 'deferred' (path) when an inbox package waits for the maintenance window;
 * 'stick-removed' (uuid).
 */
export class Agent extends EventEmitter {
  readonly led: Led;
  readonly queue: UpdateQueue;
  readonly reports: StickReports;
  private readonly log: AgentLog;
  private readonly sticks: StickIntake;
  private readonly deferred = new Set<string>();
  private media: MediaWatcher | undefined;
  private inbox: InboxWatcher | undefined;
  private window: MaintenanceWindow | undefined;
  private housekeepingTask: ScheduledTask | undefined;
  private started = false;
  private stopping = false;
  /** Aborted on stop: stick jobs in flight are given up (their children killed). */
  private readonly stickIo = new AbortController();

  constructor(
    readonly config: AgentConfig,
    private readonly pipeline: AgentPipeline,
    private readonly options: AgentOptions = {},
  ) {
    super();
    this.log = options.log ?? stderrLog();
    this.led = new Led(config.ledPaths, (path, err) => this.log.warn('cannot set the LED', { path, error: String(err) }));
    this.queue = new UpdateQueue((req) => this.pipeline.run(req), () => this.sticks.refreshLed());
    this.reports = new StickReports(pipeline.db, {
      resultFileName: config.resultFileName,
      reportsDirName: config.reportsDirName,
      isMounted: (dir) => safeIsMountPoint(dir),
      timeoutMs: config.stickTimeoutMs,
      device: options.device,
    });
    this.sticks = new StickIntake({
      config,
      queue: this.queue,
      reports: this.reports,
      led: this.led,
      log: this.log,
      signal: this.stickIo.signal,
      stopping: () => this.stopping,
      onResult: (result) => this.announce(result),
      onDone: (done: StickDone) => this.emit('stick-done', done),
      onRemoved: (uuid) => this.emit('stick-removed', uuid),
    });
  }

  async start(): Promise<void> {
    if (this.started) throw new Error('agent already started');
    this.started = true;
    const c = this.config;
    mkdirSync(c.stateDir, { recursive: true, mode: 0o750 });
    this.led.set('idle');

    // finish or reverse whatever a previous run left open, before taking new work
    const recovered = await this.pipeline.recover();
    for (const r of recovered) {
      this.log.warn('recovered an interrupted update', { update_id: r.update_id, outcome: r.outcome, file: r.package_file });
      const uuid = this.mediumOf(r.update_id);
      if (uuid) this.reports.record(uuid, r);
      this.emit('result', r);
    }
    for (const s of (await this.pipeline.ensureRunning?.()) ?? []) {
      const meta = { service: s.service, container: s.containerId, was: s.status, error: s.detail };
      if (s.action === 'started') this.log.warn('started a service that was stopped although its last update closed (an engine restart stops containers whose restart policy is "no")', meta);
      else this.log.error(s.action === 'missing' ? 'a service has no container although its last update closed' : 'cannot start a stopped service', meta);
    }

    if (c.maintenanceWindow) {
      this.window = new MaintenanceWindow(c.maintenanceWindow.cron, c.maintenanceWindow.minutes * 60_000, () => this.windowOpened());
      if (this.options.schedules !== false) this.window.start();
    }
    if (this.options.schedules !== false) {
      this.housekeepingTask = createTask(c.housekeepingCron, () => this.housekeep(), { name: 'caisson-housekeeping', noOverlap: true });
      void this.housekeepingTask.start();
    }

    this.media = new MediaWatcher({
      mediaRoot: c.mediaRoot,
      eventsDir: join(c.stateDir, 'media-events'),
      onEvent: (e) => this.sticks.onMedia(e),
      log: this.log,
    });
    await this.media.start();
    for (const e of this.media.scanMounted()) this.sticks.onMedia(e);

    this.inbox = new InboxWatcher({
      dir: c.inbox,
      stableChecks: c.stableChecks,
      checkIntervalMs: c.checkIntervalMs,
      incompleteTimeoutMs: c.incompleteTimeoutMs,
      onComplete: (p) => this.inboxComplete(p),
      log: this.log,
      device: this.options.device,
    });
    await this.inbox.start();
    this.log.info('agent started', { config: c.source, media_root: c.mediaRoot, inbox: c.inbox, state_dir: c.stateDir });
  }

  /**
   * Stop taking work, let the running update finish (the pipeline journals every step, so
   * even a kill during it is recovered on the next start), close watchers and schedules.
   * Queued but not started packages stay where they are and are found again on restart.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.stickIo.abort();
    await this.media?.close();
    await this.inbox?.close();
    await this.window?.stop();
    await this.housekeepingTask?.destroy();
    const dropped = await this.queue.stop();
    if (dropped.length) this.log.info('left queued packages for the next start', { count: dropped.length });
    this.led.set('idle');
    this.log.info('agent stopped');
  }

  /** Resolves once nothing is queued or running. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** Open the inbox window by hand (what the cron task does at each opening). */
  windowOpened(): void {
    if (this.stopping) return;
    const paths = [...this.deferred];
    this.deferred.clear();
    if (paths.length) this.log.info('maintenance window open: applying deferred inbox packages', { count: paths.length });
    for (const p of paths) this.enqueueInbox(p);
  }

  get deferredCount(): number {
    return this.deferred.size;
  }

  housekeep(now: Date = new Date()): { staging: string[]; history: number; pendingReports: number } {
    const db = this.pipeline.db;
    const staging = cleanStaging(db, this.config.stateDir, now);
    const history = pruneHistory(db, this.config.historyRetentionDays, now);
    const cutoff = new Date(now.getTime() - this.config.historyRetentionDays * 86_400_000).toISOString();
    const pendingReports = this.reports.prune(cutoff);
    this.log.info('housekeeping done', { staging_removed: staging.length, history_pruned: history, pending_reports_pruned: pendingReports });
    return { staging, history, pendingReports };
  }

  // --- inbox -------------------------------------------------------------------------

  private inboxComplete(path: string): void {
    if (this.stopping) return;
    if (this.window && !this.window.isOpen()) {
      this.deferred.add(path);
      this.log.info('inbox package waits for the maintenance window', { file: path, window: this.window.cron });
      this.emit('deferred', path);
      return;
    }
    this.enqueueInbox(path);
  }

  private enqueueInbox(path: string): void {
    const job: QueueJob = {
      key: `inbox:${path}`,
      request: { packagePath: path, source: 'inbox' },
      done: (o) => {
        const inbox = this.inbox!;
        if (o.skipped) {
          inbox.forget(path);
          return;
        }
        const result = o.result ?? failureResult(job.request, o.error);
        this.announce(result);
        try {
          const moved = inbox.finish(path, result);
          const done: InboxDone = { file: path, result, movedTo: moved.packagePath };
          this.emit('inbox-done', done);
        } catch (err) {
          this.log.error('cannot write the inbox report', { file: path, error: String(err) });
          inbox.forget(path);
        }
      },
    };
    this.queue.push(job);
  }

  // --- helpers -----------------------------------------------------------------------

  /** Log a pipeline answer and emit it as 'result'. */
  private announce(r: UpdateResult): void {
    const meta = { update_id: r.update_id, outcome: r.outcome, source: r.source, file: r.package_file, service: r.service, error: r.error?.code };
    if (r.outcome === 'rollback_failed') this.log.error('update result', meta);
    else this.log.info('update result', meta);
    this.emit('result', r);
  }

  private mediumOf(updateId: string): string | undefined {
    try {
      return new Journal(this.pipeline.db).get(updateId)?.medium_uuid ?? undefined;
    } catch {
      return undefined;
    }
  }
}
