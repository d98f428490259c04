// The autonomous agent: sticks and the inbox in, one update at a time through the
// pipeline, an LED and reports out. The pipeline is handed in (cli/agent-command.ts opens the real
// one; unit tests may pass a small fake), so this file holds only the intake logic.
//
// LED: slow blink while any stick's packages are queued or running; when a stick's
// packages are all done, its reports are written and flushed first, then the LED shows
// steady on (all OK / already installed) or fast blink (anything failed, or no package
// on the stick) until that stick is removed. Inbox work does not touch the LED.
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { basename, join } from 'node:path';
import { createTask, type ScheduledTask } from 'node-cron';
import type { AgentConfig } from '../config/agent.js';
import { toCaissonError } from '../errors.js';
import type { EnsureRunningResult } from '../pipeline/ensure-running.js';
import type { UpdateRequest, UpdateResult } from '../pipeline/types.js';
import type { Db } from '../store/db.js';
import { Journal } from '../store/journal.js';
import { Led, type LedState } from '../report/led.js';
import { StickReports, NO_PACKAGE_NOTE, batchSucceeded, tooManyPackagesNote, type Delivery } from '../report/stick.js';
import { StickTimeoutError } from '../report/stick-io.js';
import { cleanStaging, pruneHistory } from './housekeeping.js';
import { InboxWatcher } from './inbox.js';
import { stderrLog, type AgentLog } from './log.js';
import { MediaWatcher, listStickPackages, type MediaEvent } from './media.js';
import { isMountPoint } from './mounts.js';
import { UpdateQueue, type QueueJob } from './queue.js';
import { MaintenanceWindow } from './window.js';

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
  private readonly sticks = new Map<string, Stick>();
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
    this.queue = new UpdateQueue((req) => this.pipeline.run(req), () => this.refreshLed());
    this.reports = new StickReports(pipeline.db, {
      resultFileName: config.resultFileName,
      reportsDirName: config.reportsDirName,
      isMounted: (dir) => safeIsMountPoint(dir),
      timeoutMs: config.stickTimeoutMs,
      device: options.device,
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
      onEvent: (e) => this.onMedia(e),
      log: this.log,
    });
    await this.media.start();
    for (const e of this.media.scanMounted()) this.onMedia(e);

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

  // --- sticks ------------------------------------------------------------------------

  private onMedia(e: MediaEvent): void {
    if (this.stopping) return;
    if (e.action === 'remove') {
      const stick = this.sticks.get(e.uuid);
      if (stick) {
        stick.present = false;
        this.sticks.delete(e.uuid);
      }
      this.log.info('stick removed', { uuid: e.uuid });
      this.refreshLed();
      this.emit('stick-removed', e.uuid);
      return;
    }
    if (this.sticks.get(e.uuid)?.present) return; // already seen (repeated event or start-up scan)
    if (!safeIsMountPoint(e.mountpoint)) {
      this.log.warn('media event for a stick that is not mounted; ignored', { uuid: e.uuid });
      return;
    }
    const stick: Stick = { uuid: e.uuid, mountpoint: e.mountpoint, present: true };
    this.sticks.set(e.uuid, stick);
    // the LED shows "working" once packages are queued, as before the listing moved out of
    // the process (a stick that does not answer goes from idle to failure)
    void this.takeStick(stick);
  }

  /** List the stick (in its own process, with a deadline) and queue up to the per-stick limit. */
  private async takeStick(stick: Stick): Promise<void> {
    let packages: string[] = [];
    try {
      packages = await listStickPackages(stick.mountpoint, this.config.stickTimeoutMs, this.stickIo.signal);
    } catch (err) {
      if (err instanceof StickTimeoutError) stick.hung = true;
      this.log.warn(stick.hung ? 'the stick does not answer; it is not used' : 'cannot list the stick', { uuid: stick.uuid, error: String(err) });
    }
    if (this.stopping || !stick.present) return;
    const limit = this.config.maxPackagesPerStick;
    const taken = packages.slice(0, limit);
    const batch: Batch = { total: taken.length, remaining: taken.length };
    if (packages.length > limit) {
      batch.found = packages.length;
      batch.firstLeftOut = basename(packages[limit]!);
      this.log.warn('too many packages on the stick; the rest are not taken', { uuid: stick.uuid, found: packages.length, limit });
    }
    this.log.info('stick inserted', { uuid: stick.uuid, packages: packages.length });
    stick.batch = batch;
    for (const p of taken) {
      const job: QueueJob = {
        key: `usb:${stick.uuid}:${p}`,
        request: { packagePath: p, source: 'usb', mediumUuid: stick.uuid },
        cancelled: () => !stick.present,
        done: (o) => this.usbJobDone(stick, batch, job, o),
      };
      if (!this.queue.push(job)) batch.remaining--;
    }
    if (batch.remaining === 0) void this.finishBatch(stick, batch);
    this.refreshLed();
  }

  private usbJobDone(stick: Stick, batch: Batch, job: QueueJob, o: { result?: UpdateResult; error?: unknown; skipped?: boolean }): void {
    const result = o.result ?? (o.error !== undefined ? failureResult(job.request, o.error) : undefined);
    if (result) {
      this.reports.record(stick.uuid, result);
      this.logResult(result);
      this.emit('result', result);
    } else {
      this.log.info('stick removed before its package ran; skipped', { uuid: stick.uuid, file: job.request.packagePath });
    }
    batch.remaining--;
    if (batch.remaining === 0) void this.finishBatch(stick, batch);
  }

  private async finishBatch(stick: Stick, batch: Batch): Promise<void> {
    if (!stick.present) {
      if (stick.batch === batch) stick.batch = undefined;
      this.log.warn('stick removed before its report was written; report kept for its next insertion', { uuid: stick.uuid });
      this.refreshLed();
      return;
    }
    const pendingBefore = this.reports.pending(stick.uuid).length;
    let note: string | undefined;
    if (batch.found !== undefined) note = tooManyPackagesNote(batch.found, this.config.maxPackagesPerStick, batch.firstLeftOut!);
    else if (batch.total === 0 && pendingBefore === 0) note = NO_PACKAGE_NOTE;
    const delivery: Delivery = stick.hung
      ? { results: this.reports.pending(stick.uuid), written: false, error: new Error('the stick does not answer') }
      : await this.reports.deliver(stick.uuid, stick.mountpoint, note, this.stickIo.signal);
    // the LED kept blinking while the reports were written
    if (stick.batch === batch) stick.batch = undefined;
    if (this.stopping) return;
    if (delivery.error instanceof StickTimeoutError) stick.hung = true;
    if (!delivery.written) {
      this.log.warn('cannot write the report to the stick; kept for its next insertion', {
        uuid: stick.uuid,
        error: String(delivery.error),
      });
    }
    // only now, with the report flushed (or kept), does the LED show the result
    const led = batchSucceeded(delivery.results) && batch.found === undefined && !stick.hung ? 'success' : 'failure';
    stick.result = led;
    this.refreshLed();
    const done: StickDone = { uuid: stick.uuid, delivery, led };
    this.emit('stick-done', done);
  }

  private refreshLed(): void {
    if (this.stopping) return;
    let state: LedState = 'idle';
    const sticks = [...this.sticks.values()];
    if (sticks.some((s) => s.batch)) state = 'working';
    else if (sticks.some((s) => s.result === 'failure')) state = 'failure';
    else if (sticks.some((s) => s.result === 'success')) state = 'success';
    this.led.set(state);
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
        this.logResult(result);
        this.emit('result', result);
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

  private logResult(r: UpdateResult): void {
    const meta = { update_id: r.update_id, outcome: r.outcome, source: r.source, file: r.package_file, service: r.service, error: r.error?.code };
    if (r.outcome === 'rollback_failed') this.log.error('update result', meta);
    else this.log.info('update result', meta);
  }

  private mediumOf(updateId: string): string | undefined {
    try {
      return new Journal(this.pipeline.db).get(updateId)?.medium_uuid ?? undefined;
    } catch {
      return undefined;
    }
  }
}

/** An answer for a package the pipeline could not even take (it threw). */
function failureResult(req: UpdateRequest, err: unknown): UpdateResult {
  const now = new Date().toISOString();
  return {
    update_id: `agent-${randomUUID()}`,
    outcome: 'rejected',
    source: req.source,
    package_file: req.packagePath,
    error: toCaissonError(err).toJSON(),
    started_at: now,
    finished_at: now,
    steps: [],
  };
}

function safeIsMountPoint(dir: string): boolean {
  try {
    return isMountPoint(dir);
  } catch {
    return false;
  }
}
