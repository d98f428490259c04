// age's own spelling of X25519 keys (age-encryption.org/v1): a recipient is "age1…" and an
// identity (secret key) "AGE-SECRET-KEY-1…", both Bech32 (BIP 173) of the 32 raw bytes.
// What `age-keygen` writes and `caisson key fleet` writes are the same format, so a vendor
// may make a fleet key with either, and `age -d -i FILE` opens a package with it.
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { CaissonError } from '../errors.js';

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const RECIPIENT_HRP = 'age';
const IDENTITY_HRP = 'age-secret-key-';
/** DER of a PKCS#8 X25519 private key, up to its 32 raw bytes (RFC 8410). */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** "age1…" for a raw 32-byte X25519 public key. */
export function ageRecipient(rawPublicKey: Buffer): string {
  return bech32Encode(RECIPIENT_HRP, rawPublicKey);
}

/** The raw 32 bytes of an "age1…" recipient; undefined if it is not one. */
export function parseAgeRecipient(text: string): Buffer | undefined {
  const decoded = bech32Decode(text);
  return decoded?.hrp === RECIPIENT_HRP && decoded.data.length === 32 ? decoded.data : undefined;
}

/** "AGE-SECRET-KEY-1…" for an X25519 private key. */
export function ageIdentity(privateKey: KeyObject): string {
  const d = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
  return bech32Encode(IDENTITY_HRP, d).toUpperCase();
}

/** A new X25519 key pair in age-keygen's file format, and its public key. */
export function generateAgeKeyFile(now = new Date()): { text: string; privateKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const created = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return { text: `# created: ${created}\n# public key: ${ageRecipient(raw)}\n${ageIdentity(privateKey)}\n`, privateKey };
}

/**
 * The one X25519 secret key in an age identity file: lines starting with "#" and blank
 * lines are comments (age-keygen writes two), and exactly one line is "AGE-SECRET-KEY-1…".
 * Anything else is device.key_invalid, and the message never quotes the secret.
 */
export function parseAgeIdentityFile(text: string): KeyObject {
  const keys: string[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    if (!/^AGE-SECRET-KEY-1/i.test(line)) throw keyInvalid(`line ${i + 1} is neither a comment nor an AGE-SECRET-KEY-1… key`);
    keys.push(line);
  }
  if (keys.length !== 1) throw keyInvalid(keys.length === 0 ? 'it holds no AGE-SECRET-KEY-1… line' : `it holds ${keys.length} keys; add them one at a time`);
  const decoded = bech32Decode(keys[0]!);
  if (!decoded || decoded.hrp !== IDENTITY_HRP) throw keyInvalid('its AGE-SECRET-KEY-1… line is not valid Bech32 (a character is wrong, or the line was cut)');
  if (decoded.data.length !== 32) throw keyInvalid(`its key is ${decoded.data.length} bytes, not the 32 of an X25519 key`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, decoded.data]), format: 'der', type: 'pkcs8' });
}

export function keyInvalid(why: string): CaissonError {
  return new CaissonError('device.key_invalid', `not an age X25519 secret key: ${why}`);
}

// --- Bech32 (BIP 173), without its 90-character limit, as age uses it ----------------------

function polymod(values: number[]): number {
  const gen = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= gen[i]!;
  }
  return chk;
}

function hrpExpand(hrp: string): number[] {
  return [...[...hrp].map((c) => c.charCodeAt(0) >> 5), 0, ...[...hrp].map((c) => c.charCodeAt(0) & 31)];
}

function convertBits(data: Iterable<number>, from: number, to: number, pad: boolean): number[] | undefined {
  let acc = 0;
  let bits = 0;
  const out: number[] = [];
  const max = (1 << to) - 1;
  for (const v of data) {
    acc = (acc << from) | v;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >>> bits) & max);
    }
    acc &= (1 << bits) - 1;
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & max);
  } else if (bits >= from || acc !== 0) {
    return undefined; // more than 4 bits of padding, or padding that is not zero
  }
  return out;
}

function bech32Encode(hrp: string, data: Buffer): string {
  const words = convertBits(data, 8, 5, true)!;
  const mod = polymod([...hrpExpand(hrp), ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
  const checksum = [0, 1, 2, 3, 4, 5].map((i) => (mod >>> (5 * (5 - i))) & 31);
  return `${hrp}1${[...words, ...checksum].map((w) => CHARSET[w]).join('')}`;
}

function bech32Decode(text: string): { hrp: string; data: Buffer } | undefined {
  if (text.length > 200 || text !== text.toLowerCase() && text !== text.toUpperCase()) return undefined;
  const s = text.toLowerCase();
  const sep = s.lastIndexOf('1');
  if (sep < 1 || sep + 7 > s.length) return undefined;
  const hrp = s.slice(0, sep);
  if ([...hrp].some((c) => c.charCodeAt(0) < 33 || c.charCodeAt(0) > 126)) return undefined;
  const words: number[] = [];
  for (const c of s.slice(sep + 1)) {
    const w = CHARSET.indexOf(c);
    if (w < 0) return undefined;
    words.push(w);
  }
  if (polymod([...hrpExpand(hrp), ...words]) !== 1) return undefined;
  const bytes = convertBits(words.slice(0, -6), 5, 8, false);
  return bytes ? { hrp, data: Buffer.from(bytes) } : undefined;
}
