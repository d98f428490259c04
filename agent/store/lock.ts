// One changing process per state dir. The lock is an exclusive SQLite transaction on a
// separate file: the kernel drops it when the process dies (even by kill -9), so a
// crash never leaves a stale lock behind, and a second instance is refused at once.
import Database from 'better-sqlite3';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CaissonError } from '../errors.js';

export interface StateLock {
  release(): void;
}

export function acquireStateLock(stateDir: string, purpose: string): StateLock {
  mkdirSync(stateDir, { recursive: true, mode: 0o750 });
  const lockDb = new Database(join(stateDir, 'lock.db'), { timeout: 0 });
  try {
    lockDb.pragma('locking_mode = EXCLUSIVE');
    lockDb.exec('BEGIN EXCLUSIVE');
  } catch {
    lockDb.close();
    const holder = readHolder(stateDir);
    throw new CaissonError('update.busy', `another Caisson process${holder ? ` (${holder})` : ''} is changing ${stateDir}`);
  }
  writeFileSync(join(stateDir, 'lock.owner'), `pid ${process.pid}, ${purpose}, since ${new Date().toISOString()}\n`);
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try {
        lockDb.exec('ROLLBACK');
      } finally {
        lockDb.close();
      }
    },
  };
}

function readHolder(stateDir: string): string | undefined {
  try {
    return readFileSync(join(stateDir, 'lock.owner'), 'utf8').trim();
  } catch {
    return undefined;
  }
}
