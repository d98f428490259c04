// Detached Ed25519 signatures over the exact bytes of manifest.toml (node:crypto only).
// The manifest pins image.sha256 and image.size, so a valid signature covers the image too.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, openSync, readFileSync, readdirSync, statSync, writeSync, constants as fsc, type Stats } from 'node:fs';
import { join } from 'node:path';
import { CaissonError, describe } from '../errors.js';
import { checkIntegrity } from './checks.js';
import type { Manifest, StagedPackage } from './types.js';

export interface KeyPairFiles {
  privateKeyPath: string;
  publicKeyPath: string;
}

/** Write `<prefix>.key` (PKCS#8 PEM, mode 0600) and `<prefix>.pub` (SPKI PEM). Never overwrites. */
export function generateKeyPair(outPrefix: string): KeyPairFiles {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privateKeyPath = `${outPrefix}.key`;
  const publicKeyPath = `${outPrefix}.pub`;
  writeNew(privateKeyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  writeNew(publicKeyPath, publicKey.export({ type: 'spki', format: 'pem' }) as string, 0o644);
  return { privateKeyPath, publicKeyPath };
}

function writeNew(path: string, text: string, mode: number): void {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
  } catch (err) {
    throw new CaissonError('usage.invalid', `cannot create ${path}: ${describe(err)}`, {
      next: 'Choose a prefix whose .key and .pub files do not exist yet.',
    });
  }
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Base64 Ed25519 signature over the exact manifest bytes. */
export function signManifest(manifestBytes: Buffer, privateKeyPem: string | Buffer): string {
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKeyPem);
  } catch (err) {
    throw new CaissonError('usage.invalid', `the signing key is not a PEM private key: ${describe(err)}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new CaissonError('usage.invalid', `the signing key is ${key.asymmetricKeyType ?? 'unknown'}, not Ed25519`);
  }
  return sign(null, manifestBytes, key).toString('base64');
}

/** SHA-256 fingerprint (16 hex) of a public key. */
export function keyId(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

/**
 * Every `*.pub` in `dir` (a missing folder means no keys). A bad key file is
 * `config.invalid`, and so is a folder or key file that anyone but root (or the user
 * running Caisson) could change: whoever can write a trusted key can sign packages.
 */
export function loadTrustedKeys(dir: string): KeyObject[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new CaissonError('config.invalid', `cannot read the trusted keys folder ${dir}: ${describe(err)}`);
  }
  checkKeyOwnership(dir, statSync(dir), 'the trusted keys folder');
  const keys: KeyObject[] = [];
  for (const name of names.filter((n) => n.endsWith('.pub')).sort()) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (!st.isFile()) throw new CaissonError('config.invalid', `trusted key ${path} is not a regular file (links are not accepted)`, { next: KEY_PERMS_NEXT });
    checkKeyOwnership(path, st, 'trusted key');
    let key: KeyObject;
    try {
      key = createPublicKey(readFileSync(path));
    } catch (err) {
      throw new CaissonError('config.invalid', `trusted key ${path} is not a PEM public key: ${describe(err)}`);
    }
    if (key.asymmetricKeyType !== 'ed25519') {
      throw new CaissonError('config.invalid', `trusted key ${path} is ${key.asymmetricKeyType ?? 'unknown'}, not Ed25519`);
    }
    keys.push(key);
  }
  return keys;
}

const KEY_PERMS_NEXT = 'Make the trusted keys folder and its *.pub files owned by root and writable by root only (chown root:root, chmod go-w).';

function checkKeyOwnership(path: string, st: Stats, what: string): void {
  const me = process.getuid?.() ?? 0;
  if (st.uid !== 0 && st.uid !== me) {
    throw new CaissonError('config.invalid', `${what} ${path} is owned by uid ${st.uid}, not root: its owner could add a key`, { next: KEY_PERMS_NEXT });
  }
  if ((st.mode & 0o022) !== 0) {
    const who = (st.mode & 0o002) !== 0 ? 'anyone' : 'its group';
    throw new CaissonError('config.invalid', `${what} ${path} is writable by ${who} (mode ${(st.mode & 0o777).toString(8)})`, { next: KEY_PERMS_NEXT });
  }
}

/** The one line said at every start: are signatures required, and by how many keys. */
export function signaturePolicyLine(keyCount: number, dir: string): string {
  return keyCount > 0
    ? `signatures: required (${keyCount} trusted key${keyCount === 1 ? '' : 's'} in ${dir})`
    : `signatures: NOT required (no trusted keys in ${dir}): unsigned packages are accepted`;
}

export interface SignatureResult {
  /** True when a trusted key verified the signature. */
  verified: boolean;
  /** Fingerprint of the key that verified it. */
  keyId?: string;
}

const BASE64 = /^[A-Za-z0-9+/]{86}==$/; // exactly 64 bytes

/**
 * With trusted keys: a signature is required, must verify with one of them over the exact
 * manifest bytes, and the manifest must pin image.sha256 and image.size (which must then
 * match the staged image). Without trusted keys nothing is required and a present signature
 * is not checked (there is nothing to check it against).
 */
export function checkSignature(manifest: Manifest, staged: StagedPackage, trustedKeys: readonly KeyObject[]): SignatureResult {
  if (trustedKeys.length === 0) return { verified: false };
  if (!staged.signature) {
    throw new CaissonError('signature.missing', 'this device only accepts signed packages and the package has no manifest.toml.sig');
  }
  const text = staged.signature.toString('latin1').trim();
  if (!BASE64.test(text)) {
    throw new CaissonError('signature.invalid', 'manifest.toml.sig is not a base64 Ed25519 signature');
  }
  const sig = Buffer.from(text, 'base64');
  const key = trustedKeys.find((k) => verify(null, staged.manifestBytes, k, sig));
  if (!key) {
    throw new CaissonError('signature.invalid', 'manifest.toml.sig does not verify with any trusted key');
  }
  if (manifest.image.sha256 === undefined || manifest.image.size === undefined) {
    throw new CaissonError('signature.unpinned_image', 'the signed manifest does not pin image.sha256 and image.size, so the signature does not cover the image');
  }
  checkIntegrity(manifest, staged);
  return { verified: true, keyId: keyId(key) };
}
