// caisson package validate | load | build | cleanup
import { resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { Command } from 'commander';
import winston from 'winston';
import { openPipeline, type Pipeline } from '../pipeline/index.js';
import type { UpdateResult } from '../pipeline/types.js';
import { EXIT_CODES } from './exit-codes.js';
import { createLogger, type Logger } from '../log/logger.js';
import { createProgress } from '../log/progress.js';
import type { StackMemberInput } from '../package/builder.js';
import { CaissonError } from '../errors.js';
import { loadAgentConfig, type AgentConfig } from '../config/agent.js';
import { DEFAULT_AGENT_CONFIG_PATH } from '../config/defaults.js';
import { removeLeftoverStaging } from '../store/staging.js';
import { emit, existingPackagePath, runCommand, withCommonOptions, type CommonOptions } from './common.js';
import { resultLine } from './format.js';
import { readDeviceIdentity } from '../device/identity.js';
import { UNKNOWN_DEVICE, type DeviceContext } from '../package/device-target.js';

export function packageCommand(): Command {
  const pkg = new Command('package').description('validate, apply, build and clean up update packages');

  withDeviceConfig(withCommonOptions(pkg.command('validate').argument('<pkg>', '.edgepkg file').description('check a package without changing anything')))
    .option('--allow-downgrade', 'accept an older version or an older issue (local operator only)', false)
    .action((file: string, opts: DeviceOptions & { allowDowngrade: boolean }) =>
      runCommand(opts, async () => {
        const path = existingPackagePath(file);
        const pipeline = await openForChange(opts, 'package validate');
        try {
          const result = await pipeline.validate(path, { allowDowngrade: opts.allowDowngrade });
          emit(opts, result, resultLine(result));
          return EXIT_CODES[result.outcome];
        } finally {
          pipeline.close();
        }
      }),
    );

  withDeviceConfig(withCommonOptions(pkg.command('load').argument('<pkg>', '.edgepkg file').description('validate, import, apply, health-check, commit or roll back')))
    .option('-y, --yes', 'do not ask for confirmation', false)
    .option('--allow-downgrade', 'accept an older version or an older issue (local operator only)', false)
    .action((file: string, opts: DeviceOptions & { yes: boolean; allowDowngrade: boolean }) =>
      runCommand(opts, async () => {
        const path = existingPackagePath(file);
        const pipeline = await openForChange(opts, 'package load');
        try {
          const result = await pipeline.run({
            packagePath: path,
            source: 'cli',
            allowDowngrade: opts.allowDowngrade,
            confirm: opts.yes || !process.stdin.isTTY || opts.json ? undefined : askToApply,
          });
          emit(opts, result, resultLine(result));
          return EXIT_CODES[result.outcome];
        } finally {
          pipeline.close();
        }
      }),
    );

  withCommonOptions(pkg.command('build').description('vendor side: package a local image for a service, or several for a stack'))
    .option('--image <ref>', 'service package: local image reference, e.g. example/frontend:1.2.3')
    .option('--service <name>', 'service package: service name from the device catalog')
    .option('--service-revision <rev>', "service package: the catalog's service_revision")
    .option('--stack <name>', 'stack package: its name (then one --member per service, in switch order)')
    .option('--member <service,revision,image[,version]>', 'stack package: a service, its catalog revision, its local image and its version (--version by default); repeat, in switch order', collect, [])
    .requiredOption('--platform <platform>', 'e.g. linux/amd64')
    .requiredOption('--version <semver>', 'package_version')
    .requiredOption('-o, --out <file>', 'output .edgepkg')
    .option('--min-updater-version <semver>', 'oldest Caisson that may apply it', '0.1.0')
    .option('--sign <keyfile>', 'Ed25519 private key (PEM) to sign manifest.toml with')
    .option('--encrypt-to <pubkey...>', 'encrypt the image for these X25519 public keys (base64 as `caisson device show` prints them, or age1…; device keys or a fleet key from `caisson key fleet`)')
    .option('--expires-in <duration>', 'expires_at this long after the build (issued_at): 30d, 12h, 90m, 2w')
    .option('--expires-at <time>', 'expires_at as an RFC 3339 date-time, e.g. 2026-12-31T00:00:00Z')
    .option('--device-class <class>', "only devices of this class (agent.toml's device_class) take it")
    .option('--device-id <id>', 'only this device takes it (repeat for several; `caisson device show` prints the ID)', collect, [] as string[])
    .action((opts: CommonOptions & BuildFlags) =>
      runCommand(opts, async () => {
        const common = {
          platform: opts.platform,
          version: opts.version,
          out: resolve(opts.out),
          minUpdaterVersion: opts.minUpdaterVersion,
          signKeyPath: opts.sign,
          dockerSocket: opts.dockerSocket,
          encryptTo: opts.encryptTo,
          expiresIn: opts.expiresIn,
          expiresAt: opts.expiresAt,
          deviceClass: opts.deviceClass,
          deviceIds: opts.deviceId,
        };
        // the builder (image export, tar writing) only for a build, never on a device's load
        const { buildPackage, buildStackPackage } = await import('../package/builder.js');
        const built = opts.stack !== undefined ? await buildStackPackage({ ...common, stack: opts.stack, members: stackMembers(opts) }) : await buildPackage({ ...common, ...serviceFlags(opts) });
        const sealed = built.encryptedFor ? `, encrypted for ${built.encryptedFor} recipient${built.encryptedFor === 1 ? '' : 's'}` : '';
        emit(opts, built, `built ${built.out} (package ${built.packageId}, image ${built.imageSize} bytes${sealed})`);
        return 0;
      }),
    );

  withCommonOptions(pkg.command('cleanup').description('remove leftover staging copies (nothing else)'))
    .action((opts: CommonOptions) =>
      runCommand(opts, async () => {
        const pipeline = await openForChange(opts, 'package cleanup');
        try {
          const removed = removeLeftoverStaging(opts.stateDir, { open: pipeline.journal.openRecords().map((r) => r.id) });
          emit(opts, { removed }, removed.length ? `removed ${removed.length} leftover staging folder(s)` : 'no leftover staging');
          return 0;
        } finally {
          pipeline.close();
        }
      }),
    );
  return pkg;
}

interface BuildFlags {
  image?: string;
  service?: string;
  serviceRevision?: string;
  stack?: string;
  member: string[];
  platform: string;
  version: string;
  out: string;
  minUpdaterVersion?: string;
  sign?: string;
  encryptTo?: string[];
  expiresIn?: string;
  expiresAt?: string;
  deviceClass?: string;
  deviceId: string[];
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** A service package's three flags, all required, and no stack flag. */
function serviceFlags(opts: BuildFlags): { imageRef: string; service: string; serviceRevision: string } {
  if (opts.member.length) throw new CaissonError('usage.invalid', '--member belongs to a stack package: give --stack NAME too');
  const missing = (['image', 'service', 'serviceRevision'] as const).filter((k) => opts[k] === undefined);
  if (missing.length) {
    const flags = missing.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ');
    throw new CaissonError('usage.invalid', `package build needs ${flags} (a service package) or --stack with --member (a stack package)`);
  }
  return { imageRef: opts.image!, service: opts.service!, serviceRevision: opts.serviceRevision! };
}

/** A stack package's members: `--member service,revision,image[,version]`, in switch order. */
function stackMembers(opts: BuildFlags): StackMemberInput[] {
  if (opts.image !== undefined || opts.service !== undefined || opts.serviceRevision !== undefined) {
    throw new CaissonError('usage.invalid', 'a stack package takes its images from --member, not --image/--service/--service-revision');
  }
  if (opts.member.length === 0) throw new CaissonError('usage.invalid', 'a stack package needs at least one --member service,revision,image[,version]');
  return opts.member.map((text) => {
    const parts = text.split(',');
    if (parts.length < 3 || parts.length > 4 || parts.some((p) => p === '')) {
      throw new CaissonError('usage.invalid', `--member "${text.slice(0, 200)}" is not service,revision,image[,version]`);
    }
    const [service, serviceRevision, imageRef, version] = parts as [string, string, string, string | undefined];
    return { service, serviceRevision, imageRef, version };
  });
}

/** agent.toml for commands that open packages: the device key's folder and require_encryption. */
function withDeviceConfig(cmd: Command): Command {
  const env = process.env['CAISSON_CONFIG'];
  return cmd.option('--config <file>', "agent.toml: this device's class, require_encryption, and the folder of its identity and key (env CAISSON_CONFIG)", env ? env : DEFAULT_AGENT_CONFIG_PATH);
}

interface DeviceOptions extends CommonOptions {
  config: string;
}

/**
 * Who this device is, read when a package first asks (only packages that target devices do):
 * agent.toml's device_class and the device's ID. The CLI reads the identity and never makes
 * one: a device that has none yet (never started) has no ID a vendor could have named, so it
 * is "unknown" and matches no device ID, as is one whose identity cannot be read.
 */
function deviceFromConfig(readConfig: () => AgentConfig): () => DeviceContext {
  let known: DeviceContext | undefined;
  return () => {
    if (known) return known;
    const config = readConfig();
    let id = UNKNOWN_DEVICE.id;
    try {
      id = readDeviceIdentity(config.configDir)?.id ?? UNKNOWN_DEVICE.id;
    } catch {
      // a broken or unwritable identity: such a device matches no device ID
    }
    known = { id, deviceClass: config.deviceClass };
    return known;
  };
}

/** Open the pipeline for a changing command: take the lock, then finish what a crash left open. */
export async function openForChange(opts: CommonOptions & Partial<DeviceOptions>, purpose: string): Promise<Pipeline> {
  const { pipeline } = await openAndRecover(opts, purpose);
  return pipeline;
}

/**
 * Open the pipeline and finish what a crash left open. `announceRecovered` says each
 * recovered update on stderr; `caisson recover` turns them into its result instead.
 */
export async function openAndRecover(
  opts: CommonOptions & Partial<DeviceOptions>,
  purpose: string,
  announceRecovered = true,
): Promise<{ pipeline: Pipeline; recovered: UpdateResult[] }> {
  // agent.toml says where the device key is and whether plain packages are refused
  const device = opts.config ? loadAgentConfig(opts.config) : undefined;
  const log = cliLogger(opts.stateDir, purpose, opts.json);
  const pipeline = await openPipeline({
    servicesPath: opts.services,
    stateDir: opts.stateDir,
    trustedKeysDir: opts.trustedKeys,
    dockerSocket: opts.dockerSocket,
    configDir: device?.configDir,
    requireEncryption: device?.requireEncryption,
    lockPurpose: purpose,
    log,
    progress: createProgress(process.stderr, !opts.json),
    device: deviceFromConfig(() => device ?? loadAgentConfig(DEFAULT_AGENT_CONFIG_PATH)),
  });
  try {
    const recovered = await pipeline.recover();
    if (announceRecovered) for (const r of recovered) log.warn(`recovered interrupted update ${r.update_id}: ${r.outcome}`);
    return { pipeline, recovered };
  } catch (err) {
    pipeline.close();
    throw err;
  }
}

/**
 * Log lines that the command's result line says again, kept off stderr (each fact said once)
 * when the result is a line of text, but never out of the log file: the pipeline's closing
 * line for each outcome, and the failure that starts a rollback (a step line: indented, its
 * error code first).
 */
const REPEATED_BY_RESULT = [/^(committed|rolled back|rejected|ROLLBACK FAILED):/, /^ {2}[a-z]+\.[a-z_]+: /];
/** `package validate`'s result is the validation: the pipeline's "valid:" step line repeats it. */
const REPEATED_BY_VALID = /^\s*valid: /;

function cliLogger(stateDir: string, purpose: string, json: boolean): Logger {
  const log = createLogger({ stateDir });
  if (json) return log; // stdout is JSON for a program: stderr keeps every line for the person watching
  const repeated = purpose === 'package validate' ? [...REPEATED_BY_RESULT, REPEATED_BY_VALID] : REPEATED_BY_RESULT;
  const dropRepeated = winston.format((info) => (repeated.some((re) => re.test(String(info.message))) ? false : info));
  for (const transport of log.transports) {
    if (transport instanceof winston.transports.Console) {
      transport.format = transport.format ? winston.format.combine(dropRepeated(), transport.format) : dropRepeated();
    }
  }
  return log;
}

async function askToApply(s: { service: string; from?: string; to: string; version: string }): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`Apply ${s.service} ${s.version}: ${s.from ?? '(none)'} → ${s.to}? [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
