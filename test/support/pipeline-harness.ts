// The real UpdatePipeline and recovery, on a real SQLite journal, over the fake engine.
// A "crash" is simulated the way a kill -9 looks from outside: right after the journal
// saved the chosen state, the process's database connection closes and the engine stops
// answering it, so nothing more of that run reaches the journal or the engine; recovery
// then runs in a fresh pipeline over the same database file, with the engine as it was.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCatalog, findService, type Catalog, type ServiceSpec } from '../../agent/config/services.js';
import { silentLogger } from '../../agent/log/logger.js';
import { createProgress } from '../../agent/log/progress.js';
import { UpdatePipeline, type PipelineTiming } from '../../agent/pipeline/pipeline.js';
import { recoverOpenUpdates } from '../../agent/pipeline/recover.js';
import type { UpdateRequest, UpdateResult } from '../../agent/pipeline/types.js';
import { openDatabase, type Db } from '../../agent/store/db.js';
import { Journal } from '../../agent/store/journal.js';
import { CaissonError } from '../../agent/errors.js';
import type { DeviceContext } from '../../agent/package/device-target.js';
import { FakeEngine } from './fake-engine.js';
import {
  writeFakePackage,
  writeFakeStackPackage,
  type FakePackage,
  type FakePackageOptions,
  type FakeStackPackage,
  type FakeStackPackageOptions,
} from './fake-packages.js';

/** No waiting in unit tests: an engine that is gone is retried at once. */
export const FAST_TIMING: PipelineTiming = { engineWaitMs: 0, engineAttempts: 3, restoreAttempts: 3, restorePausesMs: [0] };

export const SERVICES_TOML = `catalog_version = 1

[[services]]
name = "web"
service_revision = "web-v1"
platform = "linux/amd64"
runtime_mode = "docker"
[services.docker]
container_name = "web"
[services.health_check]
kind = "running"
timeout_secs = 2
poll_interval_secs = 0.05
stable_secs = 0

[[services]]
name = "stack"
service_revision = "stack-v1"
platform = "linux/amd64"
runtime_mode = "compose"
[services.compose]
project = "stack"
file = "/fake/docker-compose.yml"
service = "app"
[services.health_check]
kind = "running"
timeout_secs = 2
poll_interval_secs = 0.05
stable_secs = 0

[[services]]
name = "manual"
service_revision = "manual-v1"
platform = "linux/amd64"
runtime_mode = "docker"
[services.docker]
container_name = "manual"
[services.health_check]
kind = "running"
timeout_secs = 2
poll_interval_secs = 0.05
stable_secs = 0
[services.rollback]
automatic = false
`;

/** A catalog for stack updates: two docker-mode services and a compose one, each with a longer stable window than 0. */
export const STACK_SERVICES_TOML = `catalog_version = 1
${['api', 'worker']
  .map(
    (name) => `
[[services]]
name = "${name}"
service_revision = "${name}-v1"
platform = "linux/amd64"
runtime_mode = "docker"
[services.docker]
container_name = "${name}"
[services.health_check]
kind = "running"
timeout_secs = 2
poll_interval_secs = 0.05
stable_secs = 0.05
`,
  )
  .join('')}
[[services]]
name = "front"
service_revision = "front-v1"
platform = "linux/amd64"
runtime_mode = "compose"
[services.compose]
project = "shop"
file = "/fake/shop/docker-compose.yml"
service = "front"
[services.health_check]
kind = "running"
timeout_secs = 2
poll_interval_secs = 0.05
stable_secs = 0.05

[[services]]
name = "manual"
service_revision = "manual-v1"
platform = "linux/amd64"
runtime_mode = "docker"
[services.docker]
container_name = "manual"
[services.health_check]
kind = "running"
timeout_secs = 2
poll_interval_secs = 0.05
stable_secs = 0
[services.rollback]
automatic = false
`;

/** Thrown by the crash hook: the simulated kill. */
export class SimulatedCrash extends Error {
  constructor(readonly point: string) {
    super(`simulated crash after "${point}"`);
  }
}

export class PipelineHarness {
  // on tmpfs where there is one: the journal fsyncs every state, and the tests need no disk
  readonly dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'caisson-unit-pipeline-'));
  readonly stateDir = join(this.dir, 'state');
  readonly engine = new FakeEngine();
  readonly catalog: Catalog;
  db: Db = openDatabase(this.stateDir);
  /** Keys the pipeline trusts (none: unsigned packages are accepted). */
  trustedKeys: KeyObject[] = [];
  /** The device's clock, as the pipeline reads it: a fake one tests move by hand. */
  clock = new Date('2026-03-16T18:30:00Z');
  /** Who this device is, for packages that target devices. */
  device: DeviceContext = { id: 'aaaa-bbbb-cccc-dddd', deviceClass: 'default' };
  /** How often the pipeline asked who this device is. */
  deviceAsked = 0;
  private n = 0;

  constructor(servicesToml = SERVICES_TOML) {
    this.catalog = parseCatalog(servicesToml);
  }

  service(name: string): ServiceSpec {
    return findService(this.catalog, name)!;
  }

  get journal(): Journal {
    return new Journal(this.db);
  }

  package(o: Omit<FakePackageOptions, 'out'>): FakePackage {
    return writeFakePackage({ ...o, out: join(this.dir, 'pkg', `${o.service}-${o.version}-${this.n++}.edgepkg`) });
  }

  stackPackage(o: Omit<FakeStackPackageOptions, 'out'>): FakeStackPackage {
    return writeFakeStackPackage({ ...o, out: join(this.dir, 'pkg', `stack-${o.version}-${this.n++}.edgepkg`) });
  }

  /** A pipeline over the current database; `afterSave` sees every saved state. */
  pipeline(afterSave: (saved: string) => void = () => undefined): UpdatePipeline {
    return new UpdatePipeline({
      catalog: this.catalog,
      journal: new Journal(this.db),
      engine: this.engine,
      stateDir: this.stateDir,
      trustedKeys: this.trustedKeys,
      log: silentLogger(),
      progress: createProgress(process.stderr, false),
      afterSave,
      timing: FAST_TIMING,
      clock: () => new Date(this.clock),
      device: () => {
        this.deviceAsked++;
        return this.device;
      },
    });
  }

  run(pkg: { path: string }, over: Partial<UpdateRequest> = {}): Promise<UpdateResult> {
    return this.pipeline().run({ packagePath: pkg.path, source: 'cli', ...over });
  }

  /**
   * Run an update that is killed right after `point` was saved. Returns the states saved
   * before the kill. Throws if the run never reached the point.
   */
  async runUntilCrash(pkg: { path: string }, point: string): Promise<string[]> {
    const saved: string[] = [];
    let crashed = false;
    const pipeline = this.pipeline((state) => {
      saved.push(state);
      if (state !== point || crashed) return;
      crashed = true;
      this.db.close();
      this.engine.gone();
      throw new SimulatedCrash(point);
    });
    await pipeline.run({ packagePath: pkg.path, source: 'cli' }).catch(() => undefined);
    if (!crashed) throw new Error(`the update never saved "${point}" (saved: ${saved.join(', ')})`);
    this.engine.back();
    this.db = openDatabase(this.stateDir);
    return saved;
  }

  /** Restart: recovery in a fresh pipeline over the same journal. */
  recover(): Promise<UpdateResult[]> {
    return recoverOpenUpdates(this.pipeline(), new Journal(this.db), this.catalog, this.stateDir);
  }

  stagingLeft(): string[] {
    try {
      return readdirSync(join(this.stateDir, 'staging'));
    } catch {
      return [];
    }
  }

  close(): void {
    try {
      this.db.close();
    } catch {
      // closed by a crash already
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function codeOf(err: unknown): string | undefined {
  return err instanceof CaissonError ? err.code : undefined;
}
