// The operator's password for the status page, stored only as a slow salted hash
// (scrypt from node:crypto, N = 2^15, r = 8, p = 1: about 0.1 s and 32 MiB per check),
// in <config dir>/web-password, mode 0600. `caisson web passwd` writes it.
import { writeFileAtomic } from '../atomic.js';
import { randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CaissonError, describe } from '../errors.js';

export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_BYTES = 1024;
const MAX_FILE_BYTES = 4096;

export interface PasswordHash {
  algorithm: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  hash: string;
}

const DEFAULT_COST = { N: 2 ** 15, r: 8, p: 1 };
const KEY_LEN = 32;

function maxmem(N: number, r: number): number {
  return 128 * N * r * 2;
}

/** Refuse passwords that are too short or too long (the length cap bounds the work). */
export function checkNewPassword(password: string): void {
  if ([...password].length < MIN_PASSWORD_LENGTH) {
    throw new CaissonError('usage.invalid', `the password must have at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) {
    throw new CaissonError('usage.invalid', `the password must be at most ${MAX_PASSWORD_BYTES} bytes`);
  }
}

export function hashPassword(password: string, cost = DEFAULT_COST): PasswordHash {
  const salt = randomBytes(16);
  const hash = scryptSync(password.normalize('NFC'), salt, KEY_LEN, { ...cost, maxmem: maxmem(cost.N, cost.r) });
  return { algorithm: 'scrypt', ...cost, salt: salt.toString('base64'), hash: hash.toString('base64') };
}

/** Constant-time check; runs on the libuv pool so the event loop keeps serving. */
export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return false;
  const expected = Buffer.from(stored.hash, 'base64');
  const got = await new Promise<Buffer>((resolve, reject) =>
    scrypt(password.normalize('NFC'), Buffer.from(stored.salt, 'base64'), expected.length, { N: stored.N, r: stored.r, p: stored.p, maxmem: maxmem(stored.N, stored.r) }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
  return got.length === expected.length && timingSafeEqual(got, expected);
}

export function parsePasswordHash(text: string): PasswordHash {
  const v = JSON.parse(text) as Partial<PasswordHash>;
  const okInt = (n: unknown, max: number) => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= max;
  if (
    v.algorithm !== 'scrypt' ||
    !okInt(v.N, 2 ** 20) ||
    ((v.N as number) & ((v.N as number) - 1)) !== 0 ||
    !okInt(v.r, 32) ||
    !okInt(v.p, 16) ||
    typeof v.salt !== 'string' ||
    typeof v.hash !== 'string' ||
    Buffer.from(v.hash, 'base64').length < 16
  ) {
    throw new Error('not a Caisson password hash');
  }
  return v as PasswordHash;
}

/** The stored hash, or undefined when no password was ever set (login is then off). */
export function readPasswordFile(path: string): PasswordHash | undefined {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CaissonError('config.invalid', `cannot read ${path}: ${describe(err)}`);
  }
  try {
    if (buf.length > MAX_FILE_BYTES) throw new Error('too large');
    return parsePasswordHash(buf.toString('utf8'));
  } catch (err) {
    throw new CaissonError('config.invalid', `${path} is not a password hash (${describe(err)})`, { next: 'Set the password again with `caisson web passwd`.' });
  }
}

/** Replace the stored hash atomically (0600 from the first byte). */
export function writePasswordFile(path: string, hash: PasswordHash): void {
  writeFileAtomic(path, JSON.stringify(hash) + '\n', { mode: 0o600 });
}
