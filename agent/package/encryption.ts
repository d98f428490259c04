// Encrypted image entries: the age v1 format (age-encryption.org/v1) with X25519 recipients,
// implemented on node:crypto (X25519, HKDF-SHA256, HMAC-SHA256, ChaCha20-Poly1305 from
// OpenSSL). The age-encryption package reads and writes the same format but decrypts in
// JavaScript at ~80 MB/s here; OpenSSL does ~1.2 GB/s (docs/decisions.md). The format is
// age's, byte for byte (docs/package-format.md), so `age -d` opens what the builder writes.
//
// The decryptor is fed the encrypted entry as it streams by and hands back plaintext only
// after the 64 KiB chunk it came from has authenticated. It knows the entry's size (from the
// tar header), so it knows which chunk is the last one before it sees it.
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { CaissonError } from '../errors.js';
import { deviceIdFor } from '../device/identity.js';
import { parseAgeRecipient } from '../device/age-keys.js';

/** The scheme a manifest's [encryption] names; the only one this updater reads. */
export const ENCRYPTION_SCHEME = 'age-v1-x25519';
/** An encrypted image entry is the image entry's name plus this suffix (image.tar.age). */
export const ENCRYPTED_SUFFIX = '.age';
/** Most recipient stanzas a header may hold (and a manifest may list). */
export const MAX_RECIPIENTS = 128;
/** Largest header, up to and including its MAC line. 128 X25519 stanzas take ~12.5 KiB. */
export const MAX_HEADER_BYTES = 32 * 1024;

const INTRO = 'age-encryption.org/v1\n';
const X25519_INFO = 'age-encryption.org/v1/X25519';
const FILE_KEY_BYTES = 16;
const NONCE_BYTES = 16;
const CHUNK = 64 * 1024;
const TAG = 16;
const SEALED_CHUNK = CHUNK + TAG;
/** How far from its place a failing chunk is looked for, to tell a swap from tampering. */
const SEARCH_WINDOW = 256;

/** A private key this device may decrypt with, and what identifies it. */
export interface DecryptionKey {
  privateKey: KeyObject;
  /** Raw 32-byte X25519 public key. */
  publicKey: Buffer;
  /** deviceIdFor(publicKey): how manifests name recipients. */
  id: string;
}

export function decryptionKeyOf(privateKey: KeyObject): DecryptionKey {
  const publicKey = rawPublicKey(privateKey);
  return { privateKey, publicKey, id: deviceIdFor(publicKey) };
}

/**
 * A recipient as `caisson device show` prints it (32 raw bytes of X25519 public key, base64),
 * or as age spells it ("age1…", what age-keygen prints for a fleet key).
 */
export function parseRecipient(text: string): Buffer {
  const t = text.trim();
  const raw = t.startsWith('age1') ? parseAgeRecipient(t) : decodeBase64(t, true);
  if (!raw || raw.length !== 32) {
    throw new CaissonError('usage.invalid', `"${text.slice(0, 80)}" is not an X25519 public key (44 base64 characters, as \`caisson device show\` prints it, or age1…)`);
  }
  return raw;
}

// --- writing ---------------------------------------------------------------------------

/** The header for `recipients` and a fresh payload sealer; write header, then sealer output. */
export function startEncryption(recipients: readonly Buffer[]): { header: Buffer; sealer: PayloadSealer } {
  if (recipients.length === 0 || recipients.length > MAX_RECIPIENTS) {
    throw new CaissonError('usage.invalid', `an encrypted package has 1 to ${MAX_RECIPIENTS} recipients, not ${recipients.length}`);
  }
  const fileKey = randomBytes(FILE_KEY_BYTES);
  let text = INTRO;
  for (const recipient of recipients) {
    const eph = generateKeyPairSync('x25519');
    const share = rawPublicKey(eph.privateKey);
    const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: x25519PublicKey(recipient) });
    const wrapKey = hkdf(shared, Buffer.concat([share, recipient]), X25519_INFO);
    const body = seal(wrapKey, Buffer.alloc(12), fileKey);
    text += `-> X25519 ${encodeBase64(share)}\n${wrapBody(encodeBase64(body))}`;
  }
  text += '---';
  const mac = createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header')).update(text, 'latin1').digest();
  const header = Buffer.from(`${text} ${encodeBase64(mac)}\n`, 'latin1');
  return { header, sealer: new PayloadSealer(fileKey) };
}

/** Size of the encrypted entry for a plaintext of `plainSize` bytes behind `headerSize`. */
export function encryptedSize(headerSize: number, plainSize: number): number {
  return headerSize + NONCE_BYTES + plainSize + TAG * Math.max(1, Math.ceil(plainSize / CHUNK));
}

/** STREAM sealing: the nonce first, then 64 KiB chunks; the last one is flagged. */
export class PayloadSealer {
  private readonly key: Buffer;
  private readonly nonce = randomBytes(NONCE_BYTES);
  private readonly pending = Buffer.alloc(CHUNK);
  private fill = 0;
  private index = 0;
  private started = false;

  constructor(fileKey: Buffer) {
    this.key = hkdf(fileKey, this.nonce, 'payload');
  }

  /** Sealed bytes ready so far; a full chunk is held back until more data shows it is not the last. */
  push(data: Buffer): Buffer {
    const out: Buffer[] = this.begin();
    let off = 0;
    while (off < data.length) {
      if (this.fill === CHUNK) {
        out.push(this.sealChunk(false));
      }
      const n = Math.min(CHUNK - this.fill, data.length - off);
      data.copy(this.pending, this.fill, off, off + n);
      this.fill += n;
      off += n;
    }
    return Buffer.concat(out);
  }

  finish(): Buffer {
    return Buffer.concat([...this.begin(), this.sealChunk(true)]);
  }

  private begin(): Buffer[] {
    if (this.started) return [];
    this.started = true;
    return [this.nonce];
  }

  private sealChunk(last: boolean): Buffer {
    const sealed = seal(this.key, chunkNonce(this.index++, last), this.pending.subarray(0, this.fill));
    this.fill = 0;
    return sealed;
  }
}

// --- reading ---------------------------------------------------------------------------

export interface DecryptorOptions {
  /** The keys to try; called once, when the header is complete (so a plain package never loads them). */
  keys: () => DecryptionKey[];
  /** Recipient IDs the manifest lists, when it was read before the entry. */
  listedRecipients?: readonly string[] | undefined;
}

/**
 * Opens an age v1 entry of a known size as it streams by. push() returns only plaintext
 * whose chunk authenticated; finish() checks that the whole entry was seen.
 */
export class PayloadDecryptor {
  private phase: 'header' | 'nonce' | 'payload' | 'done' = 'header';
  private headerBytes = Buffer.alloc(0);
  private nonceBytes = Buffer.alloc(0);
  private fileKey: Buffer | undefined;
  private payloadKey: KeyObject | undefined;
  /** One nonce buffer for every chunk: OpenSSL copies it when a decipher is made. */
  private readonly nonce = Buffer.alloc(12);
  private readonly pending = Buffer.allocUnsafe(SEALED_CHUNK);
  private fill = 0;
  private index = 0;
  private chunks = 0;
  private lastLength = 0;
  private seen = 0;
  /** Recipient stanzas in the header. */
  recipients = 0;

  constructor(
    private readonly entrySize: number,
    private readonly opts: DecryptorOptions,
  ) {}

  push(data: Buffer): Buffer[] {
    this.seen += data.length;
    const out: Buffer[] = [];
    let rest = data;
    if (this.phase === 'header') rest = this.readHeader(rest);
    if (this.phase === 'nonce' && rest.length > 0) rest = this.readNonce(rest);
    if (this.phase === 'payload') this.readPayload(rest, out);
    return out;
  }

  finish(): void {
    if (this.seen !== this.entrySize || this.phase !== 'done') {
      throw new CaissonError('crypto.payload_truncated', `the encrypted image ends early (${this.phase === 'header' ? 'inside its header' : `after ${this.index} of ${this.chunks} chunks`})`);
    }
  }

  private readHeader(data: Buffer): Buffer {
    const room = MAX_HEADER_BYTES + 1 - this.headerBytes.length;
    const view = Buffer.concat([this.headerBytes, data.subarray(0, room)]);
    if (!view.subarray(0, INTRO.length).equals(Buffer.from(INTRO).subarray(0, Math.min(INTRO.length, view.length)))) {
      throw headerInvalid('it does not start with "age-encryption.org/v1"');
    }
    const end = headerEnd(view);
    const stanzas = countStanzas(end < 0 ? view : view.subarray(0, end));
    if (stanzas > MAX_RECIPIENTS) {
      throw new CaissonError('crypto.too_many_recipients', `the encrypted image's header has more than ${MAX_RECIPIENTS} recipients`);
    }
    if (end < 0) {
      if (view.length > MAX_HEADER_BYTES) throw new CaissonError('crypto.header_too_large', `the encrypted image's header is over ${MAX_HEADER_BYTES} bytes`);
      this.headerBytes = view;
      return Buffer.alloc(0);
    }
    const consumed = end - this.headerBytes.length;
    this.openHeader(view.subarray(0, end));
    this.headerBytes = Buffer.alloc(0);
    this.phase = 'nonce';
    return data.subarray(consumed);
  }

  private openHeader(header: Buffer): void {
    const parsed = parseHeader(header);
    this.recipients = parsed.stanzas.length;
    const keys = this.opts.keys();
    for (const stanza of parsed.stanzas) {
      if (stanza.type !== 'X25519') continue;
      for (const key of keys) {
        const fileKey = unwrapX25519(stanza, key);
        if (fileKey) {
          this.fileKey = fileKey;
          break;
        }
      }
      if (this.fileKey) break;
    }
    if (!this.fileKey) {
      const ids = keys.map((k) => k.id);
      const listed = this.opts.listedRecipients?.some((r) => ids.includes(r));
      if (listed) throw headerInvalid(`the manifest names this device (${ids.join(', ')}) as a recipient, but no recipient stanza opens with its key`);
      throw noMatchingKey(ids, parsed.stanzas.length);
    }
    const mac = createHmac('sha256', hkdf(this.fileKey, Buffer.alloc(0), 'header')).update(parsed.macInput).digest();
    if (!timingSafeEqual(mac, parsed.mac)) throw headerInvalid('its MAC does not match (the header was altered)');
    const payload = this.entrySize - header.length - NONCE_BYTES;
    if (payload < TAG) throw new CaissonError('crypto.payload_truncated', `the encrypted image ends ${payload < 0 ? 'inside its nonce' : 'before its first chunk is complete'}`);
    this.chunks = Math.ceil(payload / SEALED_CHUNK);
    this.lastLength = payload - (this.chunks - 1) * SEALED_CHUNK;
    if (this.lastLength < TAG) {
      throw new CaissonError('crypto.payload_truncated', `the encrypted image's length leaves ${this.lastLength} bytes for its last chunk (cut short, or bytes added)`);
    }
  }

  private readNonce(data: Buffer): Buffer {
    const need = NONCE_BYTES - this.nonceBytes.length;
    this.nonceBytes = Buffer.concat([this.nonceBytes, data.subarray(0, need)]);
    if (this.nonceBytes.length < NONCE_BYTES) return Buffer.alloc(0);
    // a KeyObject, so the key is not copied into a new one for each of the chunks
    this.payloadKey = createSecretKey(hkdf(this.fileKey!, this.nonceBytes, 'payload'));
    this.phase = 'payload';
    return data.subarray(need);
  }

  private readPayload(data: Buffer, out: Buffer[]): void {
    let off = 0;
    while (off < data.length) {
      if (this.phase === 'done') throw new CaissonError('crypto.chunk_tampered', 'bytes follow the encrypted image\'s last chunk');
      const want = this.index === this.chunks - 1 ? this.lastLength : SEALED_CHUNK;
      if (this.fill === 0 && data.length - off >= want) {
        // a whole chunk in this piece: open it in place
        out.push(this.openChunk(data.subarray(off, off + want)));
        off += want;
        continue;
      }
      const n = Math.min(want - this.fill, data.length - off);
      data.copy(this.pending, this.fill, off, off + n);
      this.fill += n;
      off += n;
      if (this.fill === want) {
        out.push(this.openChunk(this.pending.subarray(0, want)));
        this.fill = 0;
      }
    }
  }

  private openChunk(sealed: Buffer): Buffer {
    const i = this.index;
    const last = i === this.chunks - 1;
    const plain = open(this.payloadKey!, chunkNonce(i, last, this.nonce), sealed);
    if (!plain) this.diagnose(sealed, i, last);
    if (last && plain.length === 0 && i > 0) throw new CaissonError('crypto.chunk_tampered', 'the encrypted image ends with an empty chunk');
    this.index++;
    if (last) this.phase = 'done';
    return plain;
  }

  /** A chunk did not open at its place: say whether it belongs elsewhere or was altered. */
  private diagnose(sealed: Buffer, i: number, last: boolean): never {
    const key = this.payloadKey!;
    if (open(key, chunkNonce(i, !last), sealed)) {
      if (last) throw new CaissonError('crypto.payload_truncated', `the encrypted image ends after chunk ${i}, which is not its last chunk`);
      throw new CaissonError('crypto.chunk_out_of_order', `chunk ${i} is the encrypted image's last chunk, but more follow`);
    }
    for (let d = 1; d <= SEARCH_WINDOW; d++) {
      for (const j of [i - d, i + d]) {
        if (j < 0) continue;
        if (open(key, chunkNonce(j, false), sealed) || open(key, chunkNonce(j, true), sealed)) {
          throw new CaissonError('crypto.chunk_out_of_order', `chunk ${i} of the encrypted image is chunk ${j} (chunks were swapped or moved)`);
        }
      }
    }
    throw new CaissonError('crypto.chunk_tampered', `chunk ${i} of the encrypted image does not authenticate (its bytes were altered)`);
  }
}

// --- the header ------------------------------------------------------------------------

interface Stanza {
  type: string;
  args: string[];
  body: Buffer;
}

/** Offset just past the MAC line ("--- …\n"), or -1 while it has not been seen. */
function headerEnd(view: Buffer): number {
  const mark = view.indexOf('\n---');
  if (mark < 0) return -1;
  const nl = view.indexOf(0x0a, mark + 1);
  return nl < 0 ? -1 : nl + 1;
}

function countStanzas(view: Buffer): number {
  let n = 0;
  for (let at = view.indexOf('\n-> '); at >= 0; at = view.indexOf('\n-> ', at + 1)) n++;
  return n;
}

/** The strict grammar of age v1 (https://age-encryption.org/v1): canonical base64, 64-column bodies. */
function parseHeader(header: Buffer): { stanzas: Stanza[]; macInput: Buffer; mac: Buffer } {
  for (const b of header) if (b !== 0x0a && (b < 0x20 || b > 0x7e)) throw headerInvalid('it holds bytes other than printable ASCII');
  const lines = header.toString('latin1').split('\n');
  lines.pop(); // the header ends with a newline
  if (lines[0] !== INTRO.trimEnd()) throw headerInvalid('it does not start with "age-encryption.org/v1"');
  const stanzas: Stanza[] = [];
  let at = 1;
  while (at < lines.length && lines[at]!.startsWith('-> ')) {
    const words = lines[at]!.slice(3).split(' ');
    if (words.some((w) => !/^[\x21-\x7e]+$/.test(w))) throw headerInvalid(`recipient stanza ${stanzas.length + 1} has an empty or bad argument`);
    at++;
    const body: Buffer[] = [];
    for (;;) {
      const line = lines[at];
      if (line === undefined) throw headerInvalid(`recipient stanza ${stanzas.length + 1} has no end`);
      const bytes = decodeBase64(line, false);
      if (!bytes || line.length > 64) throw headerInvalid(`recipient stanza ${stanzas.length + 1} has a body line that is not canonical base64 of at most 64 columns`);
      body.push(bytes);
      at++;
      if (line.length < 64) break;
    }
    stanzas.push({ type: words[0]!, args: words.slice(1), body: Buffer.concat(body) });
  }
  if (stanzas.length === 0) throw headerInvalid('it has no recipient stanza');
  const macLine = lines[at];
  if (at !== lines.length - 1 || macLine === undefined || !macLine.startsWith('--- ')) throw headerInvalid('a line is neither a recipient stanza nor the MAC');
  const mac = decodeBase64(macLine.slice(4), false);
  if (!mac || mac.length !== 32) throw headerInvalid('its MAC is not 32 bytes of canonical base64');
  return { stanzas, macInput: header.subarray(0, header.length - macLine.length - 1 + 3), mac };
}

/** The file key, if this stanza was made for `key`; undefined otherwise. */
function unwrapX25519(stanza: Stanza, key: DecryptionKey): Buffer | undefined {
  if (stanza.args.length !== 1) throw headerInvalid('an X25519 stanza must have exactly one argument');
  const share = decodeBase64(stanza.args[0]!, false);
  if (!share || share.length !== 32) throw headerInvalid('an X25519 stanza\'s share is not 32 bytes');
  if (stanza.body.length !== FILE_KEY_BYTES + TAG) throw headerInvalid('an X25519 stanza\'s body is not 32 bytes');
  const shared = diffieHellman({ privateKey: key.privateKey, publicKey: x25519PublicKey(share) });
  if (shared.every((b) => b === 0)) throw headerInvalid('an X25519 stanza has a low-order share');
  const wrapKey = hkdf(shared, Buffer.concat([share, key.publicKey]), X25519_INFO);
  return open(wrapKey, Buffer.alloc(12), stanza.body);
}

// --- primitives ------------------------------------------------------------------------

function hkdf(ikm: Buffer, salt: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));
}

function chunkNonce(index: number, last: boolean, nonce = Buffer.alloc(12)): Buffer {
  nonce.writeUIntBE(index, 5, 6); // an 11-byte big-endian counter; 2^48 chunks is plenty
  nonce[11] = last ? 1 : 0;
  return nonce;
}

function seal(key: Buffer, nonce: Buffer, plain: Buffer): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  const body = c.update(plain);
  c.final();
  return Buffer.concat([body, c.getAuthTag()]);
}

/** The plaintext, or undefined when the tag does not authenticate. Nothing is returned unchecked. */
function open(key: Buffer | KeyObject, nonce: Buffer, sealed: Buffer): Buffer | undefined {
  if (sealed.length < TAG) return undefined;
  const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  const plain = d.update(sealed.subarray(0, sealed.length - TAG));
  try {
    d.final();
  } catch {
    return undefined;
  }
  return plain;
}

function rawPublicKey(privateKey: KeyObject): Buffer {
  return Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x!, 'base64url');
}

function x25519PublicKey(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw.toString('base64url') }, format: 'jwk' });
}

function encodeBase64(b: Buffer): string {
  return b.toString('base64').replace(/=+$/, '');
}

/** Strict base64: the standard alphabet, canonical; padding only where `padded`. */
function decodeBase64(s: string, padded: boolean): Buffer | undefined {
  if (!(padded ? /^[A-Za-z0-9+/]*={0,2}$/ : /^[A-Za-z0-9+/]*$/).test(s)) return undefined;
  const bytes = Buffer.from(s, 'base64');
  const again = bytes.toString('base64');
  return (padded ? again : again.replace(/=+$/, '')) === s ? bytes : undefined;
}

function wrapBody(b64: string): string {
  let out = '';
  for (let i = 0; i < b64.length; i += 64) out += `${b64.slice(i, i + 64)}\n`;
  if (b64.length % 64 === 0) out += '\n';
  return out;
}

function headerInvalid(why: string): CaissonError {
  return new CaissonError('crypto.header_invalid', `the encrypted image's header is not valid: ${why}`);
}

function noMatchingKey(ids: string[], stanzas: number): CaissonError {
  const who = ids.length ? `this device (${ids.join(', ')})` : 'this device (it has no key yet)';
  return new CaissonError('crypto.no_matching_key', `the package is encrypted for ${stanzas} recipient${stanzas === 1 ? '' : 's'}, not for ${who}`);
}
