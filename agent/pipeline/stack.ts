// A stack update: one package, one journal record, several services, all or nothing.
//
//   every image imported and verified            loading_image → image_loaded
//   for each service, in the manifest's order:   switching.<svc> (its plan saved first)
//                                                switching.<svc>.<driver step> …
//                                                health_checking.<svc> (its probe must pass)
//   all of them stable together                  health_checking
//   drop what was kept for rollback              committing, committing.<svc>.<driver step> …
//   or, on any failure, every switched service   rolling_back, rolling_back.<svc> …
//   back in reverse order, each healthy again      (reverse order)
//
// The states are those of the one state table (states.ts), so recovery reads a stack record
// as it reads any other: discard, reverse (every service whose plan was saved, in reverse
// order) or finish (commit every service). Each service's plan and progress are the
// record's journal data (`members`) and its update_members rows, saved with the state.
import { rm } from 'node:fs/promises';
import type { ServiceSpec } from '../config/services.js';
import { CaissonError, toCaissonError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { Progress } from '../log/progress.js';
import type { ImageArchiveInfo, StagedPackage } from '../package/types.js';
import type { SwitchPlan } from '../runtime/driver.js';
import type { Engine } from '../runtime/engine.js';
import type { Journal, MemberRow } from '../store/journal.js';
import { waitHealthy } from '../health/wait.js';
import { compareSemver } from '../package/semver.js';
import { restorePrevious, withEngine, type EngineSteps, type PipelineTiming } from './engine-steps.js';
import { flushEngineWrites } from './flush.js';
import { importImages } from './image-import.js';
import type { UpdateRecords } from './record.js';
import type { ErrorSummary } from './types.js';

/** One service of a validated stack package, in switch order. */
export interface StackMember {
  service: ServiceSpec;
  /** This service's new version. */
  version: string;
  /** The tag its image carries in the archive and on the device. */
  reference: string;
  /** What the archive pins for its image (undefined when it could not be read). */
  expected?: ImageArchiveInfo;
}

/** A validated stack package: what it is called, its version, its services in order. */
export interface StackTarget {
  name: string;
  version: string;
  members: StackMember[];
}

/** What the journal keeps of one service of a stack (journal data `members`). */
export interface MemberData {
  service: string;
  /** Saved before the service is touched; recovery reverses (or commits) only these. */
  plan?: SwitchPlan;
  newContainerId?: string;
}

/** A service recovery or the run can act on: its catalog entry, its plan, how far it got. */
export interface PlannedMember {
  service: ServiceSpec;
  plan: SwitchPlan;
}

export interface StackDeps {
  journal: Journal;
  engine: Engine;
  log: Logger;
  progress: Progress;
  records: UpdateRecords;
  timing: PipelineTiming;
  /** Put back the tags the import moved (the pipeline's, shared with a discard). */
  undoImport: (id: string) => Promise<void>;
  /** In the commit's own transaction, after what is installed was written (the freshness floor). */
  onCommitted?: (id: string, services: string[]) => void;
}

export class StackUpdate {
  constructor(private readonly deps: StackDeps) {}

  private get steps(): EngineSteps {
    return { engine: this.deps.engine, log: this.deps.log, timing: this.deps.timing };
  }

  /** The services' rows as validation leaves them: nothing planned yet. */
  static pendingRows(journal: Journal, target: StackTarget): MemberRow[] {
    return target.members.map((m) => {
      const installed = journal.installed(m.service.name);
      const row: MemberRow = { service: m.service.name, state: 'pending', to_version: m.version, to_image: m.reference };
      if (installed) row.from_version = installed.package_version;
      return row;
    });
  }

  /** Import, switch in order, verify together, then commit; any failure rolls everything back. */
  async apply(id: string, target: StackTarget, staged: StagedPackage): Promise<void> {
    await this.loadImages(id, target, staged);
    await this.switchAndVerify(id, target);
  }

  /** Every image in one load, each proven to be the one its service's entry pins, before anything stops. */
  private async loadImages(id: string, target: StackTarget, staged: StagedPackage): Promise<void> {
    const { engine, progress, log, records } = this.deps;
    const images = target.members.map((m) => ({ reference: m.reference, expected: m.expected }));
    const imageRefs = images.map((i) => i.reference);
    const expectedImageIds = target.members.map((m) => m.expected?.imageId).filter((x): x is string => !!x);
    const dropped: { staged?: Promise<unknown> } = {};
    try {
      await importImages(engine, {
        imagePath: staged.imagePath,
        images,
        beforeLoad: (tagsBefore) => records.save(id, 'loading_image', { data: { imageRefs, tagsBefore, expectedImageIds } }),
        afterLoad: (loaded) => records.annotate(id, { detail: `loaded ${Object.keys(loaded).length} of ${images.length} images`, data: { loadedImageIds: Object.values(loaded) } }),
        onProgress: (done, total) => progress.bytes('importing', done, total),
        onUnpack: (layer, done, total) => progress.bytes('unpacking', done, total, layer && `layer ${layer}`),
        onUploaded: () => {
          dropped.staged = rm(staged.imagePath, { force: true }).catch(() => undefined);
        },
      });
    } finally {
      await dropped.staged;
    }
    records.save(id, 'image_loaded', { detail: imageRefs.join(', ') });
    log.info(`  imported ${imageRefs.join(', ')}`);
    records.removeStaging(id);
  }

  /**
   * Plan every service first (no side effects: a service that is missing stops the stack
   * before anything changed), then switch them one by one, each passing its probe before the
   * next, then watch them all together for their stable windows.
   */
  private async switchAndVerify(id: string, target: StackTarget): Promise<void> {
    const { engine, log, records, journal } = this.deps;
    const rows = journal.members(id);
    const data: MemberData[] = target.members.map((m) => ({ service: m.service.name }));
    const switched: PlannedMember[] = [];
    let failure: CaissonError | undefined;
    try {
      const plans: SwitchPlan[] = [];
      for (const m of target.members) plans.push(await engine.driverFor(m.service).plan(m.reference));
      await flushEngineWrites(engine);
      for (const [i, m] of target.members.entries()) {
        const plan = plans[i]!;
        const name = m.service.name;
        const driver = engine.driverFor(m.service);
        if (!plan.previous.wasRunning) log.warn(`  ${name} was not running before the update; a rollback will start its previous version`);
        data[i] = { service: name, plan: driver.forJournal(plan) };
        rows[i] = { ...rows[i]!, from_image: plan.previous.imageRef, state: 'planned' };
        records.save(id, 'switching', { data: { members: data }, members: rows, detail: `${name}: ${plan.previous.imageRef} → ${plan.newImageRef}` }, name);
        switched.push({ service: m.service, plan });
        log.info(`  switching ${name}: ${plan.previous.imageRef} → ${plan.newImageRef}`);
        const containerId = await driver.switchTo(plan, (step) => records.save(id, 'switching', {}, `${name}.${step}`));
        data[i] = { ...data[i]!, newContainerId: containerId };
        rows[i] = { ...rows[i]!, state: 'switched' };
        records.save(id, 'health_checking', { data: { members: data }, members: rows }, name);
        await this.firstPass(m.service, containerId);
        rows[i] = { ...rows[i]!, state: 'healthy' };
        records.annotate(id, { detail: `${name} passed its ${m.service.health_check.kind} probe`, members: rows });
      }
      records.save(id, 'health_checking', { detail: 'every service, together, for its stable window' });
      await this.stableTogether(target.members.map((m, i) => ({ service: m.service, containerId: data[i]!.newContainerId! })));
    } catch (err) {
      failure = toCaissonError(err, 'service.start_failed');
    } finally {
      this.deps.progress.done();
    }
    if (!failure) {
      await this.commit(id, switched);
      return;
    }
    log.warn(`  ${failure.code}: ${failure.message}`);
    if (switched.length === 0) throw failure; // nothing was touched: the record is discarded (rejected)
    await this.rollback(id, switched, summary(failure));
  }

  /** The service's probe passes once (its stable window comes later, with the others'). */
  private async firstPass(service: ServiceSpec, containerId: string): Promise<void> {
    const hc = service.health_check;
    this.deps.log.info(`  health check of ${service.name} (${hc.kind}): up to ${hc.timeout_secs} s`);
    await waitHealthy(this.deps.engine, containerId, { ...hc, stable_secs: 0 }, {
      onTick: (s) => this.deps.progress.countdown(`health ${service.name}`, s.secondsLeft, s.healthyFor > 0 ? '· passing' : '· not passing yet'),
    });
    this.deps.progress.done();
  }

  /** Every service stays healthy for its whole stable window, at the same time; the first to fail stops the watch. */
  private async stableTogether(members: { service: ServiceSpec; containerId: string }[]): Promise<void> {
    const longest = Math.max(0, ...members.map((m) => m.service.health_check.stable_secs));
    this.deps.log.info(`  all ${members.length} services together: stable for up to ${longest} s`);
    const abort = new AbortController();
    try {
      await Promise.all(
        members.map((m) =>
          waitHealthy(this.deps.engine, m.containerId, m.service.health_check, { signal: abort.signal }).catch((err: unknown) => {
            abort.abort();
            throw err;
          }),
        ),
      );
    } finally {
      abort.abort();
    }
  }

  /** Finish a commit: every service's rollback leftovers dropped, then what is installed written at once. Also used by recovery. */
  async commit(id: string, members: PlannedMember[]): Promise<void> {
    const { journal, log, records } = this.deps;
    records.save(id, 'committing');
    for (const { service, plan } of members) {
      await withEngine(this.steps, `committing ${service.name}`, () =>
        this.deps.engine.driverFor(service).commit(plan, (step) => records.save(id, 'committing', {}, `${service.name}.${step}`)),
      );
    }
    const row = journal.get(id)!;
    const rows = journal.members(id).map((r) => ({ ...r, state: 'committed' as const }));
    const stack = { name: row.stack!, version: row.package_version! };
    records.finish(id, 'committed', undefined, undefined, {
      members: rows,
      onClose: () => {
        for (const r of rows) {
          const version = r.to_version!;
          journal.recordInstalled({
            service: r.service,
            version,
            packageId: row.package_id!,
            imageRef: r.to_image!,
            updateId: id,
            highest: higherVersion(journal.installed(r.service)?.highest_version, version),
            stack,
          });
        }
        this.deps.onCommitted?.(id, rows.map((r) => r.service));
      },
    });
    log.info(`committed: stack ${stack.name} ${stack.version} (${rows.map((r) => `${r.service} ${r.to_version}`).join(', ')})`);
  }

  /**
   * Put every switched service back, last switched first, each verified healthy before the
   * next. A service that cannot be restored does not stop the others; the outcome is then
   * rollback_failed naming it. An engine that stays away leaves the record open for
   * recovery (docker.unreachable is thrown). Also used by recovery.
   */
  async rollback(id: string, members: PlannedMember[], cause: ErrorSummary): Promise<void> {
    const { journal, log, records } = this.deps;
    records.save(id, 'rolling_back', { data: { originalError: cause } });
    const rows = journal.members(id);
    const failed: string[] = [];
    for (const { service, plan } of [...members].reverse()) {
      const i = rows.findIndex((r) => r.service === service.name);
      if (rows[i]?.state === 'restored') continue; // a recovery after a kill: already back and verified
      records.save(id, 'rolling_back', { detail: `${service.name} back to ${plan.previous.imageRef}` }, service.name);
      log.warn(`  rolling back ${service.name} to ${plan.previous.imageRef}`);
      try {
        await withEngine(this.steps, `rolling back ${service.name}`, () =>
          restorePrevious(this.steps, service, plan, (step) => records.save(id, 'rolling_back', {}, `${service.name}.${step}`)),
        );
      } catch (err) {
        const error = toCaissonError(err, 'rollback.failed');
        if (error.code === 'docker.unreachable') throw error;
        failed.push(`${service.name}: ${error.message}`);
        log.error(`  could not restore ${service.name}: ${error.code}: ${error.message}`);
        continue;
      }
      if (i >= 0) rows[i] = { ...rows[i]!, state: 'restored' };
      records.annotate(id, { detail: `${service.name} runs ${plan.previous.imageRef} again, healthy`, members: rows });
    }
    try {
      await this.deps.undoImport(id);
    } catch (err) {
      log.warn(`  could not restore image tags: ${toCaissonError(err).message}`);
    }
    if (failed.length > 0) {
      const message = `rollback failed after ${cause.code}: ${failed.join('; ')}`;
      records.finish(id, 'rollback_failed', { code: 'rollback.failed', message, next: new CaissonError('rollback.failed', '').next }, undefined, { members: rows });
      log.error(`ROLLBACK FAILED: stack ${journal.get(id)?.stack ?? ''} needs a person. ${message}`);
      return;
    }
    records.finish(id, 'rolled_back', cause, undefined, { members: rows });
    log.warn(`rolled back: every service of stack ${journal.get(id)?.stack ?? ''} runs its previous version again (${cause.code})`);
  }
}

function summary(err: CaissonError): ErrorSummary {
  return { code: err.code, message: err.message, next: err.next };
}

function higherVersion(a: string | undefined, b: string): string {
  if (!a) return b;
  return compareSemver(a, b) >= 0 ? a : b;
}
