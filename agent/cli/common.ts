// Options every command takes, and how results reach people (one line) and machines (--json).
import { lstatSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CaissonError, toCaissonError } from '../errors.js';
import { DEFAULT_SERVICES_PATH, DEFAULT_STATE_DIR, DEFAULT_TRUSTED_KEYS_DIR } from '../config/defaults.js';
import { EXIT_UNEXPECTED } from './exit-codes.js';
import { escapeControl } from '../log/escape.js';

export interface CommonOptions {
  services: string;
  stateDir: string;
  trustedKeys: string;
  dockerSocket?: string;
  json: boolean;
}

/**
 * The environment settings every command honours, so that one `export` line (the demo prints
 * it) points a bare `caisson` at a catalog and state folder. An option on the command line
 * wins; an empty variable counts as unset.
 */
export const ENV = {
  services: 'CAISSON_SERVICES',
  stateDir: 'CAISSON_STATE_DIR',
  trustedKeys: 'CAISSON_TRUSTED_KEYS',
  dockerSocket: 'CAISSON_DOCKER_SOCKET',
} as const;

function fromEnv(name: string): string | undefined {
  const value = process.env[name];
  return value ? value : undefined;
}

export function withCommonOptions(cmd: Command): Command {
  return cmd
    .option('--services <file>', `service catalog (env ${ENV.services})`, fromEnv(ENV.services) ?? DEFAULT_SERVICES_PATH)
    .option('--state-dir <dir>', `state folder: history, journal, staging, logs (env ${ENV.stateDir})`, fromEnv(ENV.stateDir) ?? DEFAULT_STATE_DIR)
    .option('--trusted-keys <dir>', `folder of trusted Ed25519 public keys, *.pub (env ${ENV.trustedKeys})`, fromEnv(ENV.trustedKeys) ?? DEFAULT_TRUSTED_KEYS_DIR)
    .option('--docker-socket <path>', `Docker engine socket (env ${ENV.dockerSocket})`, fromEnv(ENV.dockerSocket))
    .option('--json', 'print one JSON object instead of text', false);
}

/**
 * The package path a person typed, checked before any configuration is read: a path that
 * does not exist is a usage error (nothing is recorded), not a rejected update.
 */
export function existingPackagePath(file: string): string {
  const path = resolve(file);
  try {
    lstatSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new CaissonError('package.not_found', `there is no file at ${path}`);
    }
    // anything else (a folder we may not read, …) is for the package reader to judge
  }
  return path;
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
      process.stderr.write(`error ${error.code}: ${sentence(escapeControl(error.message))}\n  next: ${error.next}\n`);
    }
    process.exitCode = EXIT_UNEXPECTED;
  }
}

/** A message as a whole sentence: it ends with a full stop (or its own ? or !). */
export function sentence(text: string): string {
  const t = text.trim();
  if (t === '') return t;
  return /[.!?]$/.test(t) ? t : `${t}.`;
}
