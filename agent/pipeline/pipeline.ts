// The update pipeline: validate → import image → switch → health-check → commit, or roll
// back. Every state is saved in the journal before the side effect it announces
// (states.ts), so recover.ts can finish or reverse an update cut short at any point.
import { rm } from 'node:fs/promises';
import type { KeyObject } from 'node:crypto';
import type { Catalog, ServiceSpec } from '../config/services.js';
import { CaissonError, toCaissonError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { Progress } from '../log/progress.js';
import { stagePackage } from '../package/reader.js';
import type { DecryptionKey } from '../package/encryption.js';
import { parseManifest, rfc3339Millis } from '../package/manifest.js';
import { validateStaged } from '../package/validate.js';
import type { DeviceContext } from '../package/device-target.js';
import { checkIssueOrder } from '../package/freshness.js';
import { IssueRecords } from '../store/freshness.js';
import type { ServiceManifest, StackManifest, StagedPackage } from '../package/types.js';
import { UPDATER_VERSION } from '../version.js';
import type { Journal } from '../store/journal.js';
import { stagingDirFor } from '../store/staging.js';
import type { SwitchPlan } from '../runtime/driver.js';
import type { Engine } from '../runtime/engine.js';
import { waitHealthy } from '../health/wait.js';
import { checkDiskSpace } from './disk.js';
import { checkPolicy } from './policy.js';
import { importImage, restoreImageTags } from './image-import.js';
import { faultPoint } from './fault.js';
import { DEFAULT_TIMING, restorePrevious, withEngine, type EngineSteps, type PipelineTiming } from './engine-steps.js';
import { flushEngineWrites } from './flush.js';
import { touchedService } from './states.js';
import { UpdateRecords } from './record.js';
import { StackUpdate, type StackTarget } from './stack.js';
import { validateStack } from './stack-target.js';
import { compareSemver as compareVersions } from '../package/semver.js';
import type { ErrorSummary, UpdateRequest, UpdateResult } from './types.js';

export { DEFAULT_TIMING, type PipelineTiming } from './engine-steps.js';

export interface PipelineDeps {
  catalog: Catalog;
  journal: Journal;
  engine: Engine;
  stateDir: string;
  trustedKeys: KeyObject[];
  /** The device's keys for encrypted packages (read when one comes), and whether plain ones are refused. */
  decryption?: { keys: () => DecryptionKey[]; requireEncryption: boolean };
  log: Logger;
  progress: Progress;
  /** Called right after each state (or `closed:<outcome>`) is saved; the fault-injection point. */
  afterSave?: (saved: string) => void;
  timing?: Partial<PipelineTiming>;
  /** Who this device is, for packages that target devices (package/device-target.ts); asked only then. */
  device?: () => DeviceContext;
  /** The device's clock (tests inject a fake one); the real clock by default. */
  clock?: () => Date;
}

/** A package that passed every check, with what it updates; alreadyInstalled: committed before by that update. */
type Checked =
  | { kind: 'service'; manifest: ServiceManifest; staged: StagedPackage; service: ServiceSpec; alreadyInstalled?: string }
  | { kind: 'stack'; staged: StagedPackage; target: StackTarget; alreadyInstalled?: string };

export class UpdatePipeline {
  private readonly timing: PipelineTiming;
  private readonly records: UpdateRecords;
  /** The stack path (stack.ts); recovery uses its commit and rollback. */
  readonly stack: StackUpdate;
  private readonly issues: IssueRecords;

  constructor(private readonly deps: PipelineDeps) {
    this.timing = { ...DEFAULT_TIMING, ...deps.timing };
    this.records = new UpdateRecords(deps.journal, deps.afterSave ?? faultPoint);
    this.issues = new IssueRecords(deps.journal.db);
    this.stack = new StackUpdate({
      journal: deps.journal,
      engine: deps.engine,
      log: deps.log,
      progress: deps.progress,
      records: this.records,
      timing: this.timing,
      undoImport: (id) => this.undoImport(id),
      onCommitted: (id, services) => this.recordIssue(id, services),
    });
  }

  /** Run one update end to end. Package and service failures come back as outcomes, not throws. */
  async run(req: UpdateRequest): Promise<UpdateResult> {
    const { journal, log } = this.deps;
    const id = journal.begin({ kind: 'update', source: req.source, packageFile: req.packagePath, mediumUuid: req.mediumUuid });
    log.info(`update ${id}: ${req.packagePath} (from ${req.source})`);
    try {
      const checked = await this.stageAndValidate(id, req);
      if (checked.alreadyInstalled) {
        this.records.finish(id, 'already_installed', undefined, `already installed by ${checked.alreadyInstalled}`);
        return journal.toResult(id);
      }
      if (checked.kind === 'stack') {
        await this.confirmStack(req, checked.target);
        await this.stack.apply(id, checked.target, checked.staged);
      } else {
        const { manifest, staged, service } = checked;
        if (req.confirm) {
          const current = await this.deps.engine.driverFor(service).inspect();
          const ok = await req.confirm({ service: service.name, from: current.imageRef, to: manifest.image.reference, version: manifest.package_version });
          if (!ok) throw new CaissonError('update.cancelled', 'cancelled by the operator before anything changed');
        }
        await this.loadImage(id, manifest, staged);
        await this.switchAndVerify(id, manifest, service);
      }
    } catch (err) {
      const error = toCaissonError(err);
      const row = journal.get(id);
      if (row && !row.closed) {
        if (!touchedService(row.state)) {
          await this.discard(id, error);
        } else {
          // only an engine that stayed away through the bounded wait gets here: the record
          // stays open and `caisson recover` (or the agent's next start) finishes the rollback
          log.error(`${error.code}: ${error.message}; update ${id} stays open until the engine is back (caisson recover)`);
          return { ...journal.toResult(id), outcome: 'rollback_failed', error: summary(error) };
        }
      }
    } finally {
      this.deps.progress.done();
    }
    return journal.toResult(id);
  }

  /** Read-only validation: stage, check, record it in history, remove the staging copy. */
  async validate(packagePath: string, opts: { allowDowngrade?: boolean } = {}): Promise<UpdateResult> {
    const { journal } = this.deps;
    const id = journal.begin({ kind: 'validation', source: 'cli', packageFile: packagePath });
    try {
      // nothing is imported: hash and inspect image.tar as it streams by, write no copy
      const checked = await this.stageAndValidate(id, { packagePath, source: 'cli', allowDowngrade: opts.allowDowngrade }, { copyImage: false });
      this.records.removeStaging(id);
      if (checked.alreadyInstalled) this.records.finish(id, 'already_installed', undefined, `already installed by ${checked.alreadyInstalled}`);
      else this.records.finish(id, 'valid');
    } catch (err) {
      await this.discard(id, toCaissonError(err));
    }
    return journal.toResult(id);
  }

  // --- steps -------------------------------------------------------------------------

  private async stageAndValidate(
    id: string,
    req: Pick<UpdateRequest, 'packagePath' | 'source' | 'allowDowngrade'>,
    stageOpts: { copyImage?: boolean } = {},
  ): Promise<Checked> {
    const { progress, log } = this.deps;
    const stagingDir = stagingDirFor(this.deps.stateDir, id);
    await checkDiskSpace(this.deps.engine, this.deps.stateDir, req.packagePath);
    this.records.save(id, 'received', { data: { stagingDir } });
    const staged = await stagePackage(req.packagePath, stagingDir, {
      copyImage: stageOpts.copyImage,
      decryptionKeys: this.deps.decryption?.keys,
      requireEncryption: this.deps.decryption?.requireEncryption,
      onProgress: (done, total) => progress.bytes(stageOpts.copyImage === false ? 'hashing' : 'staging', done, total),
    });
    this.records.save(id, 'staged', {
      detail: `package ${staged.packageId}`,
      patch: { package_id: staged.packageId },
    });
    log.info(`  staged package ${staged.packageId.slice(0, 16)}…`); // its size is on the progress line

    const manifest = parseManifest(staged.manifestBytes);
    if (manifest.package_type === 'stack') return this.checkStack(id, staged, manifest, req.allowDowngrade === true);
    return this.checkService(id, staged, manifest, req.allowDowngrade === true);
  }

  private async checkService(id: string, staged: StagedPackage, manifest: ServiceManifest, allowDowngrade: boolean): Promise<Checked> {
    const { journal, log } = this.deps;
    this.records.annotate(id, {
      detail: `manifest ${manifest.target.service} ${manifest.package_version}`,
      patch: { package_version: manifest.package_version, service: manifest.target.service, to_image: manifest.image.reference, to_version: manifest.package_version },
    });
    const { service, signature } = await validateStaged(
      staged,
      {
        catalog: this.deps.catalog,
        trustedKeys: this.deps.trustedKeys,
        updaterVersion: UPDATER_VERSION,
        device: this.deps.device,
        time: { clock: (this.deps.clock ?? (() => new Date()))(), floor: this.issues.floor() },
      },
      manifest,
    );

    // once only: a package committed before is not applied again (unless the local
    // operator explicitly asks to go back to it with --allow-downgrade)
    const committedBy = journal.committedPackage(staged.packageId);
    if (committedBy && committedBy.service === service.name && !allowDowngrade) {
      return { kind: 'service', manifest, staged, service, alreadyInstalled: committedBy.update_id };
    }
    checkPolicy(journal, service.name, manifest.package_version, staged.packageId, allowDowngrade);
    const signed = signature.verified;
    checkIssueOrder(manifest, service.name, this.issues.newestFor(service.name), { signed, allowDowngrade });
    const installed = journal.installed(service.name);
    // only a verified issued_at may move the time floor, and only when the update commits
    const data = signed && manifest.issued_at !== undefined ? { issuedAt: manifest.issued_at } : undefined;
    this.records.save(id, 'validated', { detail: 'all checks passed', patch: { from_version: installed?.package_version ?? null }, ...(data ? { data } : {}) });
    log.info(`  valid: ${service.name} ${installed?.package_version ?? '(no version installed by Caisson yet)'} → ${manifest.package_version}`);
    return { kind: 'service', manifest, staged, service };
  }

  /** A stack: every check of a service package for each of its services, and the policy for each. */
  private async checkStack(id: string, staged: StagedPackage, manifest: StackManifest, allowDowngrade: boolean): Promise<Checked> {
    const { journal, log } = this.deps;
    const name = manifest.stack.name;
    this.records.annotate(id, {
      detail: `manifest stack ${name} ${manifest.package_version}: ${manifest.services.map((s) => `${s.service} ${s.version}`).join(', ')}`,
      patch: { package_version: manifest.package_version, stack: name, to_version: manifest.package_version },
    });
    const { signed, ...target } = await validateStack(staged, manifest, {
      catalog: this.deps.catalog,
      trustedKeys: this.deps.trustedKeys,
      updaterVersion: UPDATER_VERSION,
      device: this.deps.device,
      time: { clock: (this.deps.clock ?? (() => new Date()))(), floor: this.issues.floor() },
    });
    const committedBy = journal.committedPackage(staged.packageId);
    if (committedBy && committedBy.service === name && !allowDowngrade) {
      return { kind: 'stack', staged, target, alreadyInstalled: committedBy.update_id };
    }
    for (const m of target.members) {
      checkPolicy(journal, m.service.name, m.version, staged.packageId, allowDowngrade);
      checkIssueOrder(manifest, m.service.name, this.issues.newestFor(m.service.name), { signed, allowDowngrade });
    }
    const rows = StackUpdate.pendingRows(journal, target);
    // only a verified issued_at may move the time floor, and only when the whole stack commits
    const data = signed && manifest.issued_at !== undefined ? { issuedAt: manifest.issued_at } : undefined;
    this.records.save(id, 'validated', { detail: 'all checks passed, for every service', members: rows, ...(data ? { data } : {}) });
    log.info(`  valid: stack ${name} ${manifest.package_version}: ${rows.map((r) => `${r.service} ${r.from_version ?? '(none)'} → ${r.to_version}`).join(', ')}`);
    return { kind: 'stack', staged, target };
  }

  /** Ask the operator once for the whole stack, after validation and before anything changes. */
  private async confirmStack(req: UpdateRequest, target: StackTarget): Promise<void> {
    if (!req.confirm) return;
    const from: string[] = [];
    for (const m of target.members) from.push(`${m.service.name} ${(await this.deps.engine.driverFor(m.service).inspect()).imageRef ?? '(none)'}`);
    const to = target.members.map((m) => `${m.service.name} ${m.reference}`).join(', ');
    const ok = await req.confirm({ service: `stack ${target.name}`, from: from.join(', '), to, version: target.version });
    if (!ok) throw new CaissonError('update.cancelled', 'cancelled by the operator before anything changed');
  }

  private async loadImage(id: string, manifest: ServiceManifest, staged: StagedPackage): Promise<void> {
    const { engine, progress, log } = this.deps;
    const ref = manifest.image.reference;
    const dropped: { staged?: Promise<unknown> } = {};
    try {
      await importImage(engine, {
        imagePath: staged.imagePath,
        reference: ref,
        expectedImage: staged.imageArchive,
        beforeLoad: (tagsBefore) => this.records.save(id, 'loading_image', { data: { imageRef: ref, tagsBefore, expectedImageId: staged.imageArchive?.imageId } }),
        afterLoad: (loadedImageId) => this.records.annotate(id, { detail: `loaded ${loadedImageId}`, data: { loadedImageId } }),
        onProgress: (done, total) => progress.bytes('importing', done, total),
        onUnpack: (layer, done, total) => progress.bytes('unpacking', done, total, layer && `layer ${layer}`),
        // The engine has every byte and unpacks for a while yet: the staged copy goes now, so
        // the disk holds it next to the engine's two copies (its scratch folder, then the
        // layers) only during the upload, and its removal is off the critical path.
        onUploaded: () => {
          dropped.staged = rm(staged.imagePath, { force: true }).catch(() => undefined);
        },
      });
    } finally {
      await dropped.staged;
    }
    this.records.save(id, 'image_loaded', { detail: ref });
    log.info(`  imported ${ref}`);
    this.records.removeStaging(id);
  }

  private async switchAndVerify(id: string, manifest: ServiceManifest, service: ServiceSpec): Promise<void> {
    const { log, progress, engine } = this.deps;
    const driver = engine.driverFor(service);
    await flushEngineWrites(engine);
    const plan = await driver.plan(manifest.image.reference);
    if (!plan.previous.wasRunning) {
      // The switch starts the new version whatever state the old one was in, and a rollback
      // leaves the previous version running too (every driver's rollback starts it): a
      // predefined service is never left stopped by an update. (An engine restart mid-import
      // stops every container whose restart policy is "no"; this is how such a service comes back.)
      log.warn(`  ${service.name} was not running before the update; a rollback will start its previous version`);
    }
    this.records.annotate(id, { detail: `from ${plan.previous.imageRef}`, patch: { from_image: plan.previous.imageRef } });
    this.records.save(id, 'switching', { data: { plan: driver.forJournal(plan) } });
    log.info(`  switching ${service.name}: ${plan.previous.imageRef} → ${plan.newImageRef}`);
    let failure: CaissonError | undefined;
    try {
      const containerId = await driver.switchTo(plan, (step, data) => this.records.save(id, 'switching', { data: data ? { switchData: data } : undefined }, step));
      this.records.save(id, 'health_checking', { data: { newContainerId: containerId } });
      const hc = service.health_check;
      log.info(`  health check (${hc.kind}): up to ${hc.timeout_secs} s, stable for ${hc.stable_secs} s`);
      await waitHealthy(engine, containerId, hc, {
        onTick: (s) =>
          progress.countdown('health', s.secondsLeft, s.healthyFor > 0 ? `· healthy for ${s.healthyFor.toFixed(1)} of ${hc.stable_secs} s` : '· not passing yet'),
      });
      progress.done();
    } catch (err) {
      failure = toCaissonError(err, 'service.start_failed');
      progress.done();
    }
    if (!failure) {
      await this.commit(id, service, plan);
      return;
    }
    log.warn(`  ${failure.code}: ${failure.message}`);
    if (!service.rollback.automatic) {
      this.records.finish(id, 'rollback_failed', summary(failure), undefined, {
        next: `Automatic rollback is off for ${service.name}: the new version was left in place and the previous container kept. Decide by hand.`,
      });
      return;
    }
    await this.rollback(id, service, plan, summary(failure));
  }

  /** Finish a commit; also used by recovery for records stopped in `committing`. */
  async commit(id: string, service: ServiceSpec, plan: SwitchPlan): Promise<void> {
    const { journal, log } = this.deps;
    this.records.save(id, 'committing');
    await this.withEngine(`committing ${service.name}`, () => this.deps.engine.driverFor(service).commit(plan, (step) => this.records.save(id, 'committing', {}, step)));
    const row = journal.get(id)!;
    const { issuedAt } = this.records.data(id);
    this.records.finish(id, 'committed', undefined, undefined, {
      onClose: () => {
        journal.recordInstalled({
          service: service.name,
          version: row.package_version!,
          packageId: row.package_id!,
          imageRef: plan.newImageRef,
          updateId: id,
          highest: higherVersion(journal.installed(service.name)?.highest_version, row.package_version!),
        });
        // same transaction as the commit: the time floor moves exactly when the update lands
        this.recordIssue(id, [service.name], issuedAt);
      },
    });
    log.info(`committed: ${service.name} now runs ${plan.newImageRef} (${row.package_version})`);
  }

  /** The verified issued_at of a committing update, as the newest issue of each service it installs. */
  private recordIssue(id: string, services: string[], issuedAt = this.records.data(id).issuedAt): void {
    if (typeof issuedAt !== 'string') return;
    for (const service of services) this.issues.record({ service, issuedAt, issuedMs: rfc3339Millis(issuedAt), updateId: id });
  }

  /** Put the previous version back and verify it; also used by recovery. */
  async rollback(id: string, service: ServiceSpec, plan: SwitchPlan, cause: ErrorSummary): Promise<void> {
    const { log } = this.deps;
    this.records.save(id, 'rolling_back', { data: { originalError: cause } });
    log.warn(`  rolling back ${service.name} to ${plan.previous.imageRef}`);
    try {
      // an engine that went away (restart, crash) gets a bounded wait, then the whole
      // (idempotent) rollback runs again; the previous container is still there
      await this.withEngine(`rolling back ${service.name}`, () => restorePrevious(this.steps, service, plan, (step) => this.records.save(id, 'rolling_back', {}, step)));
      try {
        await this.undoImport(id);
      } catch (err) {
        // the previous version runs again either way; a tag left behind is not worth a failed rollback
        log.warn(`  could not restore image tags: ${toCaissonError(err).message}`);
      }
    } catch (err) {
      const error = toCaissonError(err, 'rollback.failed');
      if (error.code === 'docker.unreachable') throw error; // leave the record open: recovery retries when the engine is back
      const message = `rollback failed after ${cause.code}: ${error.message}`;
      this.records.finish(id, 'rollback_failed', { code: 'rollback.failed', message, next: new CaissonError('rollback.failed', '').next });
      log.error(`ROLLBACK FAILED: ${service.name} needs a person. ${message}`);
      return;
    }
    this.records.finish(id, 'rolled_back', cause);
    log.warn(`rolled back: ${service.name} runs ${plan.previous.imageRef} again (${cause.code})`);
  }

  /** Close a record whose service was never touched: tags restored, staging removed. */
  async discard(id: string, error: CaissonError): Promise<void> {
    const { log } = this.deps;
    try {
      await this.undoImport(id);
    } catch (err) {
      log.warn(`  could not restore image tags: ${toCaissonError(err).message}`);
    }
    this.records.removeStaging(id);
    this.records.finish(id, 'rejected', summary(error));
    log.warn(`rejected: ${error.code}: ${error.message}`);
  }

  /** Put back the tags the import moved (journal data says which image it brought). */
  private async undoImport(id: string): Promise<void> {
    const data = this.records.data(id);
    if (!data.tagsBefore) return;
    const ids = [data.loadedImageId, data.expectedImageId, ...(data.loadedImageIds ?? []), ...(data.expectedImageIds ?? [])].filter((x): x is string => !!x);
    await restoreImageTags(this.deps.engine, data.tagsBefore, ids, data.imageRefs ?? data.imageRef);
  }

  /** What the shared engine steps (engine-steps.ts) need. */
  private get steps(): EngineSteps {
    return { engine: this.deps.engine, log: this.deps.log, timing: this.timing };
  }

  private withEngine<T>(doing: string, step: () => Promise<T>): Promise<T> {
    return withEngine(this.steps, doing, step);
  }
}

function summary(err: CaissonError): ErrorSummary {
  return { code: err.code, message: err.message, next: err.next };
}

function higherVersion(a: string | undefined, b: string): string {
  if (!a) return b;
  return compareVersions(a, b) >= 0 ? a : b;
}
