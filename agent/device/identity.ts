// The device's own identity: a stable ID and an X25519 key pair, made on the device at
// its first start and never sent anywhere but its public half. Support staff read the ID
// and public key (`caisson device show`, the status page) and hand them to the vendor.
//
// Files in the config dir (default /etc/caisson, the folder of agent.toml):
//   device.key   the private key, PKCS#8 PEM, mode 0600
//   device.json  {"id", "public_key", "created_at"}: what may be shown to anyone
// The ID is derived from the public key (SHA-256, first 80 bits, base32 in four groups),
// so anyone holding the public key can check that an ID belongs to it.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, linkSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CaissonError, describe } from '../errors.js';

export const DEVICE_KEY_FILE = 'device.key';
export const DEVICE_INFO_FILE = 'device.json';
/** Neither file is ever bigger than this; a bigger one is not ours. */
const MAX_FILE_BYTES = 8 * 1024;

export interface DeviceIdentity {
  /** e.g. "k3xq-7h2m-pa4d-6wzt" */
  id: string;
  /** The X25519 public key, 32 raw bytes in base64. */
  public_key: string;
  created_at: string;
}

/** Read the identity, or make it when this is the device's first start. */
export function ensureDeviceIdentity(configDir: string): DeviceIdentity {
  const existing = readDeviceIdentity(configDir);
  if (existing) return existing;
  mkdirSync(configDir, { recursive: true, mode: 0o755 });
  const { privateKey } = generateKeyPairSync('x25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const keyPath = join(configDir, DEVICE_KEY_FILE);
  const tmp = join(configDir, `.${DEVICE_KEY_FILE}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  writeFileSync(tmp, pem, { mode: 0o600, flag: 'wx' });
  try {
    // a hard link fails when another process made the key first: then theirs wins
    linkSync(tmp, keyPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw identityError(`cannot write ${keyPath}: ${describe(err)}`);
  } finally {
    rmSync(tmp, { force: true });
  }
  return readDeviceIdentity(configDir)!;
}

/** The identity if the device has one; undefined on a device that never started. */
export function readDeviceIdentity(configDir: string): DeviceIdentity | undefined {
  const keyPath = join(configDir, DEVICE_KEY_FILE);
  let st;
  try {
    st = lstatSync(keyPath);
  } catch {
    return undefined;
  }
  if (!st.isFile()) throw identityError(`${keyPath} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    // never leave a private key readable by others
    chmodSync(keyPath, 0o600);
  }
  const identity = identityFromKey(readKey(keyPath));
  const infoPath = join(configDir, DEVICE_INFO_FILE);
  let info: Partial<DeviceIdentity> | undefined;
  try {
    info = JSON.parse(readSmall(infoPath)) as Partial<DeviceIdentity>;
  } catch {
    info = undefined;
  }
  if (info?.id !== identity.id || info.public_key !== identity.public_key || typeof info.created_at !== 'string') {
    // device.json is only a readable copy: rewrite it from the key when missing or stale
    writeInfo(configDir, identity);
    return identity;
  }
  return { ...identity, created_at: info.created_at };
}

/**
 * The device's private key, to decrypt packages encrypted for it (package/encryption.ts);
 * undefined on a device that never started. It is read, never copied anywhere.
 */
export function readDevicePrivateKey(configDir: string): KeyObject | undefined {
  if (!readDeviceIdentity(configDir)) return undefined; // checks the file, tightens its mode
  return createPrivateKey(readKey(join(configDir, DEVICE_KEY_FILE)));
}

/** The ID for a raw 32-byte public key. */
export function deviceIdFor(rawPublicKey: Buffer): string {
  const digest = createHash('sha256').update(rawPublicKey).digest().subarray(0, 10);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{4}/g)!.join('-');
}

function identityFromKey(pem: string): DeviceIdentity {
  let raw: Buffer;
  try {
    const priv = createPrivateKey(pem);
    if (priv.asymmetricKeyType !== 'x25519') throw new Error(`it is a ${priv.asymmetricKeyType} key, not X25519`);
    const jwk = createPublicKey(priv).export({ format: 'jwk' });
    raw = Buffer.from(jwk.x!, 'base64url');
  } catch (err) {
    throw identityError(`the device key is not a valid X25519 private key: ${describe(err)}`);
  }
  return { id: deviceIdFor(raw), public_key: raw.toString('base64'), created_at: new Date().toISOString() };
}

function readKey(path: string): string {
  try {
    return readSmall(path);
  } catch (err) {
    throw identityError(`cannot read ${path}: ${describe(err)}`);
  }
}

function readSmall(path: string): string {
  const buf = readFileSync(path);
  if (buf.length > MAX_FILE_BYTES) throw new Error(`${path} is larger than ${MAX_FILE_BYTES} bytes`);
  return buf.toString('utf8');
}

function writeInfo(configDir: string, identity: DeviceIdentity): void {
  const path = join(configDir, DEVICE_INFO_FILE);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, JSON.stringify(identity, null, 2) + '\n', { mode: 0o644 });
    // rename is atomic: a reader sees the old copy or the new one
    renameSync(tmp, path);
  } catch {
    // a read-only config dir: the key is what counts, the copy is a convenience
    rmSync(tmp, { force: true });
  }
}

function identityError(message: string): CaissonError {
  return new CaissonError('device.identity_invalid', message);
}
