// caisson package validate | load | build | cleanup
import { resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { Command } from 'commander';
import { openPipeline, type Pipeline } from '../pipeline/index.js';
import type { UpdateResult } from '../pipeline/types.js';
import { EXIT_CODES } from './exit-codes.js';
import { createLogger } from '../log/logger.js';
import { createProgress } from '../log/progress.js';
import { buildPackage } from '../package/builder.js';
import { removeLeftoverStaging } from '../store/staging.js';
import { emit, runCommand, withCommonOptions, type CommonOptions } from './common.js';
import { resultLine } from './format.js';

export function packageCommand(): Command {
  const pkg = new Command('package').description('validate, apply, build and clean up update packages');

  withCommonOptions(pkg.command('validate').argument('<pkg>', '.edgepkg file').description('check a package without changing anything'))
    .option('--allow-downgrade', 'accept an older version (local operator only)', false)
    .action((file: string, opts: CommonOptions & { allowDowngrade: boolean }) =>
      runCommand(opts, async () => {
        const pipeline = await openForChange(opts, 'package validate');
        try {
          const result = await pipeline.validate(resolve(file), { allowDowngrade: opts.allowDowngrade });
          emit(opts, result, resultLine(result));
          return EXIT_CODES[result.outcome];
        } finally {
          pipeline.close();
        }
      }),
    );

  withCommonOptions(pkg.command('load').argument('<pkg>', '.edgepkg file').description('validate, import, apply, health-check, commit or roll back'))
    .option('-y, --yes', 'do not ask for confirmation', false)
    .option('--allow-downgrade', 'accept an older version (local operator only)', false)
    .action((file: string, opts: CommonOptions & { yes: boolean; allowDowngrade: boolean }) =>
      runCommand(opts, async () => {
        const pipeline = await openForChange(opts, 'package load');
        try {
          const result = await pipeline.run({
            packagePath: resolve(file),
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

  withCommonOptions(pkg.command('build').description('vendor side: package a local image for a service'))
    .requiredOption('--image <ref>', 'local image reference, e.g. example/frontend:1.2.3')
    .requiredOption('--service <name>', 'service name from the device catalog')
    .requiredOption('--service-revision <rev>', "the catalog's service_revision")
    .requiredOption('--platform <platform>', 'e.g. linux/amd64')
    .requiredOption('--version <semver>', 'package_version')
    .requiredOption('-o, --out <file>', 'output .edgepkg')
    .option('--min-updater-version <semver>', 'oldest Caisson that may apply it', '0.1.0')
    .option('--sign <keyfile>', 'Ed25519 private key (PEM) to sign manifest.toml with')
    .action((opts: CommonOptions & Record<string, string>) =>
      runCommand(opts, async () => {
        const built = await buildPackage({
          imageRef: opts.image!,
          service: opts.service!,
          serviceRevision: opts.serviceRevision!,
          platform: opts.platform!,
          version: opts.version!,
          out: resolve(opts.out!),
          minUpdaterVersion: opts.minUpdaterVersion,
          signKeyPath: opts.sign,
          dockerSocket: opts.dockerSocket,
        });
        emit(opts, built, `built ${built.out} (package ${built.packageId}, image ${built.imageSize} bytes)`);
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

/** Open the pipeline for a changing command: take the lock, then finish what a crash left open. */
export async function openForChange(opts: CommonOptions, purpose: string): Promise<Pipeline> {
  const { pipeline } = await openAndRecover(opts, purpose);
  return pipeline;
}

export async function openAndRecover(opts: CommonOptions, purpose: string): Promise<{ pipeline: Pipeline; recovered: UpdateResult[] }> {
  const log = createLogger({ stateDir: opts.stateDir });
  const pipeline = await openPipeline({
    servicesPath: opts.services,
    stateDir: opts.stateDir,
    trustedKeysDir: opts.trustedKeys,
    dockerSocket: opts.dockerSocket,
    lockPurpose: purpose,
    log,
    progress: createProgress(process.stderr, !opts.json),
  });
  try {
    const recovered = await pipeline.recover();
    for (const r of recovered) log.warn(`recovered interrupted update ${r.update_id}: ${r.outcome}`);
    return { pipeline, recovered };
  } catch (err) {
    pipeline.close();
    throw err;
  }
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
