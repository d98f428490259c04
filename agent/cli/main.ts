#!/usr/bin/env node
// caisson: the operator's command line. Every command drives the same pipeline the agent uses.
import { Command } from 'commander';
import { UPDATER_VERSION } from '../version.js';
import { generateKeyPair } from '../package/signature.js';
import { writeFleetKey } from '../device/decryption-keys.js';
import { EXIT_CODES } from './exit-codes.js';
import { emit, runCommand, withCommonOptions, type CommonOptions } from './common.js';
import { resultLine } from './format.js';
import { historyCommand, serviceCommand } from './info-commands.js';
import { openAndRecover, packageCommand } from './package-commands.js';
import { deviceCommand } from './device-command.js';
import { webCommand } from './web-command.js';

const program = new Command('caisson')
  .description('Offline updater for predefined Docker services')
  .version(UPDATER_VERSION)
  .enablePositionalOptions()
  .showHelpAfterError()
  .addHelpText('after', '\nExit codes: 0 committed/valid, 2 rejected (service untouched), 3 rolled back, 4 rollback failed, 1 unexpected. See docs/cli.md.');

program.addCommand(serviceCommand());
program.addCommand(packageCommand());
program.addCommand(historyCommand());
program.addCommand(deviceCommand());
program.addCommand(webCommand());

withCommonOptions(program.command('recover').description('finish or reverse updates a crash left open, and say what was done'))
  .action((opts: CommonOptions) =>
    runCommand(opts, async () => {
      const { pipeline, recovered } = await openAndRecover(opts, 'recover', false);
      pipeline.close();
      const lines = recovered.map((r) => `recovered ${resultLine(r)}`);
      emit(opts, { recovered }, lines.length ? lines.join('\n') : 'nothing to recover: no update was left open');
      return recovered.some((r) => r.outcome === 'rollback_failed') ? EXIT_CODES.rollback_failed : 0;
    }),
  );

const key = program.command('key').description('signing keys for packages');
key
  .command('generate')
  .description('create an Ed25519 key pair: PREFIX.key (private, keep it with the vendor) and PREFIX.pub (for devices)')
  .requiredOption('-o, --out <prefix>', 'output path prefix')
  .option('--json', 'print JSON', false)
  .action((opts: { out: string; json: boolean }) =>
    runCommand(opts, async () => {
      const files = generateKeyPair(opts.out);
      emit(opts, files, `wrote ${Object.values(files).join(' and ')}`);
      return 0;
    }),
  );

key
  .command('fleet')
  .description('create an X25519 key pair for encrypting packages to many devices at once: FILE holds the secret (age-keygen format, 0600; install it with `caisson device add-key`), the public key is printed for `package build --encrypt-to`')
  .requiredOption('-o, --out <file>', 'where to write the secret key (must not exist)')
  .option('--json', 'print JSON', false)
  .action((opts: { out: string; json: boolean }) =>
    runCommand(opts, async () => {
      const made = writeFleetKey(opts.out);
      emit(opts, made, `wrote ${made.file}\npublic key ${made.public_key} (${made.id}, ${made.age_recipient})`);
      return 0;
    }),
  );

program
  .command('agent')
  .description('run the autonomous agent: USB sticks and the inbox in, LED and stick reports out')
  .option('--config <file>', 'agent.toml', '/etc/caisson/agent.toml')
  .action(async (opts: { config: string }) => {
    const { runAgent } = await import('./agent-command.js');
    await runCommand({}, async () => {
      await runAgent({ configPath: opts.config });
      return 0;
    });
  });

await program.parseAsync(process.argv);
