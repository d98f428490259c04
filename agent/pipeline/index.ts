// Wiring: open everything one pipeline needs (catalog, state database and lock, engine,
// trusted keys, drivers) and hand out run / validate / recover.
import { loadCatalog } from '../config/services.js';
import type { Catalog, ServiceSpec } from '../config/services.js';
import type { ServiceDriver } from '../runtime/driver.js';
import type { ContainerInfo } from '../health/probes.js';
import { openDatabase, type Db } from '../store/db.js';
import { acquireStateLock, type StateLock } from '../store/lock.js';
import { Journal } from '../store/journal.js';
import { connectDocker } from '../runtime/docker-client.js';
import { createDockerEngine } from '../runtime/engine.js';
import { loadTrustedKeys, signaturePolicyLine } from '../package/signature.js';
import { decryptionKeyOf, type DecryptionKey } from '../package/encryption.js';
import { readDevicePrivateKey } from '../device/identity.js';
import { readDecryptionKeys } from '../device/decryption-keys.js';
import { createLogger, type Logger } from '../log/logger.js';
import { createProgress, type Progress } from '../log/progress.js';
import { UpdatePipeline } from './pipeline.js';
import { ensureServicesRunning, type EnsureRunningResult } from './ensure-running.js';
import { recoverOpenUpdates } from './recover.js';
import type { UpdateRequest, UpdateResult } from './types.js';
import type { DeviceContext } from '../package/device-target.js';
import { DEFAULT_CONFIG_DIR, DEFAULT_TRUSTED_KEYS_DIR } from '../config/defaults.js';

export { DEFAULT_STATE_DIR, DEFAULT_SERVICES_PATH, DEFAULT_TRUSTED_KEYS_DIR, DEFAULT_CONFIG_DIR } from '../config/defaults.js';

export interface PipelineOptions {
  servicesPath: string;
  stateDir: string;
  dockerSocket?: string;
  trustedKeysDir?: string;
  composeCommand?: 'auto' | 'docker compose' | 'docker-compose';
  /** Where the device key is (agent.toml's folder); encrypted packages are opened with it. */
  configDir?: string;
  /** agent.toml require_encryption: refuse packages whose image is not encrypted. */
  requireEncryption?: boolean;
  log?: Logger;
  progress?: Progress;
  /** How long to wait for the engine at start before docker.unreachable. */
  dockerWaitMs?: number;
  /** Who this device is, asked only for packages that target devices; unknown (matching no target) without it. */
  device?: () => DeviceContext;
}

export interface Pipeline {
  run(req: UpdateRequest): Promise<UpdateResult>;
  validate(packagePath: string, opts?: { allowDowngrade?: boolean }): Promise<UpdateResult>;
  recover(): Promise<UpdateResult[]>;
  /** Start every service whose last update closed but whose container is stopped (ensure-running.ts). */
  ensureRunning(): Promise<EnsureRunningResult[]>;
  /** The engine's driver for a service, for read-only looks (the status page's inspect). */
  driverFor(service: ServiceSpec): ServiceDriver;
  /** A container's inspect data through the engine port (the status page's health column). */
  container(id: string): Promise<ContainerInfo | undefined>;
  catalog: Catalog;
  journal: Journal;
  db: Db;
  close(): void;
}

/** Open a pipeline that may change things: takes the state-dir lock. */
export async function openPipeline(opts: PipelineOptions & { lockPurpose: string }): Promise<Pipeline> {
  const catalog = loadCatalog(opts.servicesPath);
  const lock: StateLock = acquireStateLock(opts.stateDir, opts.lockPurpose);
  try {
    const db = openDatabase(opts.stateDir);
    const journal = new Journal(db);
    const engine = createDockerEngine(connectDocker(opts.dockerSocket), { stateDir: opts.stateDir, composeCommand: opts.composeCommand ?? 'auto' });
    await engine.ping({ waitMs: opts.dockerWaitMs ?? 10_000 });
    const log = opts.log ?? createLogger({ stateDir: opts.stateDir });
    const keysDir = opts.trustedKeysDir ?? DEFAULT_TRUSTED_KEYS_DIR;
    const trustedKeys = loadTrustedKeys(keysDir);
    log.info(signaturePolicyLine(trustedKeys.length, keysDir));
    if (opts.requireEncryption) log.info('encryption: required (plain packages are refused)');
    const configDir = opts.configDir ?? DEFAULT_CONFIG_DIR;
    let deviceKeys: DecryptionKey[] | undefined;
    const decryption = {
      // read only when an encrypted package comes: a device that never gets one never opens its key
      keys: () => (deviceKeys ??= deviceDecryptionKeys(configDir)),
      requireEncryption: opts.requireEncryption === true,
    };
    const pipeline = new UpdatePipeline({
      catalog,
      journal,
      engine,
      stateDir: opts.stateDir,
      trustedKeys,
      decryption,
      log,
      progress: opts.progress ?? createProgress(process.stderr, false),
      device: opts.device,
    });
    return {
      run: (req) => pipeline.run(req),
      validate: (path, o) => pipeline.validate(path, o),
      recover: () => recoverOpenUpdates(pipeline, journal, catalog, opts.stateDir),
      ensureRunning: () => ensureServicesRunning({ catalog, journal, engine }),
      driverFor: (service) => engine.driverFor(service),
      container: (id) => engine.container(id),
      catalog,
      journal,
      db,
      close() {
        db.close();
        lock.release();
      },
    };
  } catch (err) {
    lock.release();
    throw err;
  }
}

/** The device's own key and the keys added beside it (a fleet key, `caisson device add-key`). */
function deviceDecryptionKeys(configDir: string): DecryptionKey[] {
  const own = readDevicePrivateKey(configDir);
  return [...(own ? [own] : []), ...readDecryptionKeys(configDir)].map(decryptionKeyOf);
}
