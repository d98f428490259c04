// caisson key generate | fleet: the vendor's signing keys and a fleet's encryption key.
import type { Command } from 'commander';
import { generateKeyPair } from '../package/signature.js';
import { writeFleetKey } from '../device/decryption-keys.js';
import { emit, runCommand } from './common.js';

export function addKeyCommand(program: Command): void {
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
}
