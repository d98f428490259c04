// Options every command takes, and how results reach people (one line) and machines (--json).
import type { Command } from 'commander';
import { CaissonError, toCaissonError } from '../errors.js';
import { DEFAULT_SERVICES_PATH, DEFAULT_STATE_DIR, DEFAULT_TRUSTED_KEYS_DIR } from '../pipeline/index.js';
import { EXIT_UNEXPECTED } from './exit-codes.js';
import { escapeControl } from '../log/escape.js';

export interface CommonOptions {
  services: string;
  stateDir: string;
  trustedKeys: string;
  dockerSocket?: string;
  json: boolean;
}

export function withCommonOptions(cmd: Command): Command {
  return cmd
    .option('--services <file>', 'service catalog', DEFAULT_SERVICES_PATH)
    .option('--state-dir <dir>', 'state folder (history, journal, staging)', DEFAULT_STATE_DIR)
    .option('--trusted-keys <dir>', 'folder of trusted Ed25519 public keys (*.pub)', DEFAULT_TRUSTED_KEYS_DIR)
    .option('--docker-socket <path>', 'Docker engine socket', process.env.CAISSON_DOCKER_SOCKET)
    .option('--json', 'print one JSON object instead of text', false);
}

/** Print a result: JSON on stdout, or one plain line. */
export function emit(opts: { json: boolean }, value: unknown, line: string): void {
  if (opts.json) process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  else process.stdout.write(line + '\n');
}

/**
 * Run a command body and turn what it throws into the documented output and exit code:
 * an error outside the pipeline's outcomes is "unexpected" (exit 1), printed with its code
 * and the next step.
 */
export async function runCommand(opts: { json?: boolean }, body: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await body();
  } catch (err) {
    const error = err instanceof CaissonError ? err : toCaissonError(err);
    if (opts.json) {
      process.stdout.write(JSON.stringify({ outcome: 'error', error: error.toJSON() }, null, 2) + '\n');
    } else {
      process.stderr.write(`error ${error.code}: ${escapeControl(error.message)}\n  next: ${error.next}\n`);
    }
    process.exitCode = EXIT_UNEXPECTED;
  }
}
