// Encrypted .edgepkg files without an engine (test data only): a crafted docker-save image,
// encrypted with agent/package/encryption.ts, in a package whose manifest pins both the
// encrypted entry and the image. `mutate` changes the encrypted entry after it was pinned,
// so a hostile variant differs from a valid one in exactly one place.
import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { decryptionKeyOf, startEncryption, type DecryptionKey } from '../../agent/package/encryption.js';
import { deviceIdFor } from '../../agent/device/identity.js';
import { tarEnd, tarEntry } from '../../agent/package/tar-writer.js';
import { craftLayer, craftTar, legacyImage } from './image-archives.js';
import { ageIdentity as productAgeIdentity, ageRecipient as productAgeRecipient } from '../../agent/device/age-keys.js';

export const SEALED_CHUNK = 64 * 1024 + 16;

export interface TestKey extends DecryptionKey {
  /** As `caisson device show` prints it. */
  publicBase64: string;
  pem: string;
}

/** An X25519 key pair as a device holds it. */
export function testKey(): TestKey {
  const { privateKey } = generateKeyPairSync('x25519');
  return keyFrom(privateKey);
}

export function keyFrom(privateKey: KeyObject | string): TestKey {
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  const d = decryptionKeyOf(key);
  return { ...d, publicBase64: d.publicKey.toString('base64'), pem: key.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** A valid docker-save image of about `bytes` (one random layer), tagged `ref`. */
export function craftedImage(ref: string, bytes: number): Buffer {
  const filler = createHash('sha256').update(ref).digest('hex').repeat(Math.ceil(bytes / 64)).slice(0, bytes);
  return craftTar(legacyImage({ ref, layers: [craftLayer('filler.txt', filler)] }).entries);
}

/** The age entry for `plain`, sealed for `recipients`. */
export function encryptBytes(recipients: readonly Buffer[], plain: Buffer): Buffer {
  const { header, sealer } = startEncryption(recipients);
  return Buffer.concat([header, sealer.push(plain), sealer.finish()]);
}

/** Where things are in an age entry: header end, then the 16-byte nonce, then the chunks. */
export function layoutOf(entry: Buffer): { headerSize: number; payloadAt: number; chunks: number; chunkAt: (i: number) => number } {
  const mark = entry.indexOf('\n--- ');
  const headerSize = entry.indexOf(0x0a, mark + 1) + 1;
  const payloadAt = headerSize + 16;
  return { headerSize, payloadAt, chunks: Math.ceil((entry.length - payloadAt) / SEALED_CHUNK), chunkAt: (i) => payloadAt + i * SEALED_CHUNK };
}

export interface EncryptedPackageOptions {
  reference: string;
  service: string;
  revision: string;
  version?: string;
  recipients: readonly Buffer[];
  /** The plaintext image (default: a crafted one of ~300 KiB, five chunks). */
  image?: Buffer;
  /** Gzip the image before encrypting it (image.tar.gz.age). */
  gzip?: boolean;
  /** Change the encrypted entry after the manifest pinned it. */
  mutate?: (entry: Buffer) => Buffer;
  /** Replace the manifest's [encryption] table (raw TOML; '' for none). */
  encryptionToml?: (pinned: { sha256: string; size: number; recipients: string[] }) => string;
  /** The manifest after the image entry (a reader cannot check recipients before the payload). */
  manifestLast?: boolean;
  /** Ship the image unencrypted (with whatever encryptionToml says). */
  plain?: boolean;
}

export function encryptedPackageBytes(o: EncryptedPackageOptions): { bytes: Buffer; entry: Buffer; image: Buffer } {
  const image = o.image ?? craftedImage(o.reference, 300 * 1024);
  const inner = o.gzip ? gzipSync(image) : image;
  const sealed = o.plain ? inner : encryptBytes(o.recipients, inner);
  const pinned = { sha256: sha256(sealed), size: sealed.length, recipients: o.recipients.map((r) => deviceIdFor(r)) };
  const encryption = o.encryptionToml
    ? o.encryptionToml(pinned)
    : `[encryption]\nscheme = "age-v1-x25519"\nrecipients = [${pinned.recipients.map((r) => `"${r}"`).join(', ')}]\nsha256 = "${pinned.sha256}"\nsize = ${pinned.size}\n`;
  const manifest = `format_version = 1
package_type = "service"
package_version = "${o.version ?? '1.0.0'}"
created_at = "2026-03-16T18:30:00Z"

[target]
service = "${o.service}"
service_revision = "${o.revision}"
platform = "linux/amd64"

[image]
reference = "${o.reference}"
sha256 = "${sha256(inner)}"
size = ${inner.length}

[compatibility]
min_updater_version = "0.1.0"

${encryption}`;
  const entry = o.mutate ? o.mutate(Buffer.from(sealed)) : sealed;
  const name = `image.tar${o.gzip ? '.gz' : ''}${o.plain ? '' : '.age'}`;
  const parts = [tarEntry({ name: 'manifest.toml' }, Buffer.from(manifest)), tarEntry({ name }, entry)];
  if (o.manifestLast) parts.reverse();
  return { bytes: Buffer.concat([...parts, tarEnd()]), entry, image };
}

// --- age's own key strings, to hand keys to the age-encryption package --------------------
// (the product's bech32, agent/device/age-keys.ts, itself checked against that package in
// test/unit/device/decryption-keys.test.ts)

/** "age1…": the recipient string the age tools take for this public key. */
export function ageRecipient(key: TestKey): string {
  return productAgeRecipient(key.publicKey);
}

/** "AGE-SECRET-KEY-1…": the identity string the age tools take for this private key. */
export function ageIdentity(key: TestKey): string {
  return productAgeIdentity(key.privateKey);
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
