// Further keys this device decrypts packages with, beside its own identity: a shared fleet
// key a vendor encrypts for once instead of per device (`caisson device add-key`). They live
// next to the identity, in the config dir (default /etc/caisson):
//
//   decryption-keys/            mode 0700, owned by the user Caisson runs as (root)
//     <device ID>.key           mode 0600: the age identity line "AGE-SECRET-KEY-1…"
//
// A file is named by the ID of its public key (identity.ts deviceIdFor), so adding the same
// key twice changes nothing. Files are opened without following links and read only up to a
// few KiB; only the public half and the ID are ever shown.
import { constants as fsc, closeSync, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, unlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { writeFileAtomic } from '../atomic.js';
import { join } from 'node:path';
import { CaissonError, describe } from '../errors.js';
import { ageIdentity, ageRecipient, generateAgeKeyFile, keyInvalid, parseAgeIdentityFile } from './age-keys.js';
import { DEVICE_KEY_FILE, deviceIdFor, readDeviceIdentity } from './identity.js';

export const DECRYPTION_KEYS_DIR = 'decryption-keys';
/** Largest key file read: age-keygen's output is ~190 bytes. */
export const MAX_KEY_FILE_BYTES = 4096;
/** Most keys a device holds besides its own. */
export const MAX_DECRYPTION_KEYS = 32;
const KEY_SUFFIX = '.key';

/** An installed key as it may be shown: never the secret. */
export interface InstalledKey {
  id: string;
  /** 32 raw bytes, base64, as `--encrypt-to` takes it. */
  public_key: string;
  /** The same key as age spells it ("age1…"). */
  age_recipient: string;
}

export interface AddResult extends InstalledKey {
  /** False when the device held this key already (or it is the device's own). */
  added: boolean;
}

/** Install the one age X25519 secret key in `text`. */
export function addDecryptionKey(configDir: string, text: string): AddResult {
  const privateKey = parseAgeIdentityFile(text);
  const shown = show(privateKey);
  const own = readDeviceIdentity(configDir);
  if (own?.public_key === shown.public_key) return { ...shown, added: false };
  const dir = keysDir(configDir, true);
  const path = join(dir, `${shown.id}${KEY_SUFFIX}`);
  const existing = readExisting(path);
  if (existing && show(existing).public_key === shown.public_key) return { ...shown, added: false };
  if (!existing && listFiles(dir).length >= MAX_DECRYPTION_KEYS) {
    throw new CaissonError('device.key_invalid', `this device holds ${MAX_DECRYPTION_KEYS} keys already; remove one first (\`caisson device remove-key\`)`);
  }
  writeKeyFile(path, `${ageIdentity(privateKey)}\n`);
  return { ...shown, added: true };
}

/** The installed keys (not the device's own), sorted by ID. */
export function listDecryptionKeys(configDir: string): InstalledKey[] {
  return readDecryptionKeys(configDir).map(show);
}

/** The installed keys' private halves, for the reader; none when the folder does not exist. */
export function readDecryptionKeys(configDir: string): KeyObject[] {
  const dir = keysDir(configDir, false);
  if (!dir) return [];
  return listFiles(dir).map((name) => readKeyFile(join(dir, name), true)!);
}

/** Remove the installed key named by its public key (base64 or age1…) or its ID. */
export function removeDecryptionKey(configDir: string, which: string): InstalledKey {
  const wanted = which.trim();
  const dir = keysDir(configDir, false);
  const installed = dir ? listFiles(dir).map((name) => ({ name, key: show(readKeyFile(join(dir, name), true)!) })) : [];
  const hit = installed.find(({ key }) => key.id === wanted || key.public_key === wanted || key.age_recipient === wanted);
  if (!hit) {
    const own = readDeviceIdentity(configDir);
    const isOwn = own && (own.id === wanted || own.public_key === wanted || ageRecipient(Buffer.from(own.public_key, 'base64')) === wanted);
    throw new CaissonError('device.key_not_found', isOwn
      ? `${wanted} is this device's own identity key (${DEVICE_KEY_FILE}), which is not removed this way`
      : `this device holds no added key ${wanted.slice(0, 80)} (it holds ${installed.length})`);
  }
  try {
    unlinkSync(join(dir!, hit.name));
  } catch (err) {
    throw new CaissonError('fs.error', `cannot remove ${join(dir!, hit.name)}: ${describe(err)}`, { cause: err });
  }
  return hit.key;
}

/** `caisson key fleet`: a new key pair, the secret written to `file` (never over an existing file). */
export function writeFleetKey(file: string): InstalledKey & { file: string } {
  const { text, privateKey } = generateAgeKeyFile();
  try {
    writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    const exists = (err as NodeJS.ErrnoException).code === 'EEXIST';
    throw new CaissonError(exists ? 'usage.invalid' : 'fs.error', exists ? `${file} exists already; a key file is never overwritten` : `cannot write ${file}: ${describe(err)}`, { cause: err });
  }
  return { file, ...show(privateKey) };
}

/** A key file named on the command line: a regular file, no link followed, bounded. */
export function readKeyFileArgument(path: string): string {
  return readBounded(path, 'fs.error').toString('utf8');
}

/** What came on stdin, refused when over the bound. */
export function stdinText(buf: Buffer): string {
  if (buf.length > MAX_KEY_FILE_BYTES) throw keyInvalid(`what came on stdin is over ${MAX_KEY_FILE_BYTES} bytes`);
  return buf.toString('utf8');
}

function show(privateKey: KeyObject): InstalledKey {
  const raw = Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x!, 'base64url');
  return { id: deviceIdFor(raw), public_key: raw.toString('base64'), age_recipient: ageRecipient(raw) };
}

/** The keys folder, made when `create`; undefined when it does not exist and may not be made. */
function keysDir(configDir: string, create: true): string;
function keysDir(configDir: string, create: false): string | undefined;
function keysDir(configDir: string, create: boolean): string | undefined {
  const dir = join(configDir, DECRYPTION_KEYS_DIR);
  if (create) {
    try {
      mkdirSync(configDir, { recursive: true, mode: 0o755 });
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new CaissonError('fs.error', `cannot make ${dir}: ${describe(err)}`, { cause: err });
    }
  }
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    return undefined;
  }
  if (!st.isDirectory()) throw new CaissonError('device.key_invalid', `${dir} is not a folder (a link or a file is never followed)`);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new CaissonError('device.key_invalid', `${dir} belongs to user ${st.uid}, not to the user Caisson runs as (${process.getuid()})`);
  }
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700); // never leave secrets listable by others
  return dir;
}

function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(KEY_SUFFIX) && !name.startsWith('.'))
    .sort();
}

/** The key already stored under this name, if any and readable (a damaged one is replaced). */
function readExisting(path: string): KeyObject | undefined {
  try {
    return readKeyFile(path, false);
  } catch {
    return undefined;
  }
}

/** A key file's private key; undefined when it does not exist and `must` is false. */
function readKeyFile(path: string, must: boolean): KeyObject | undefined {
  let buf: Buffer;
  try {
    buf = readBounded(path, 'device.key_invalid');
  } catch (err) {
    if (!must && (err as { errno?: string }).errno === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return parseAgeIdentityFile(buf.toString('utf8'));
  } catch (err) {
    throw new CaissonError('device.key_invalid', `${path}: ${(err as Error).message}; remove the file and add the key again`);
  }
}

/** Up to MAX_KEY_FILE_BYTES of a regular file, opened without following a link. */
function readBounded(path: string, code: 'fs.error' | 'device.key_invalid'): Buffer {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    const e = (err as NodeJS.ErrnoException).code;
    const why = e === 'ELOOP' ? 'it is a symbolic link, which is not followed' : describe(err);
    throw Object.assign(new CaissonError(code, `cannot read ${path}: ${why}`, { cause: err }), { errno: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CaissonError(code, `${path} is not a regular file`);
    if (st.size > MAX_KEY_FILE_BYTES) throw keyInvalid(`${path} is ${st.size} bytes; a key file is at most ${MAX_KEY_FILE_BYTES}`);
    if (code === 'device.key_invalid' && (st.mode & 0o077) !== 0) fchmodSync(fd, 0o600);
    const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    let n = 0;
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null);
    if (n > MAX_KEY_FILE_BYTES) throw keyInvalid(`${path} is over ${MAX_KEY_FILE_BYTES} bytes`);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** The key written crash-safely (atomic.ts): a reader never sees half a key, and a damaged file for the same key is replaced. */
function writeKeyFile(path: string, text: string): void {
  try {
    writeFileAtomic(path, text, { mode: 0o600 });
  } catch (err) {
    throw new CaissonError('fs.error', `cannot write ${path}: ${describe(err)}`, { cause: err });
  }
}
