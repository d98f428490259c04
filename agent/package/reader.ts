// Stage an .edgepkg: one streaming pass over the file that checks the tar structure strictly
// and copies the allowlisted entries into files Caisson creates itself (fixed names) in the
// staging folder. image.tar is hashed while it is copied and read as a docker-save archive
// in the same pass (its manifest.json only); the package's identity is derived from that
// digest and the manifest (identity.ts), so every byte is hashed once. Memory stays flat.
// image.tar.gz is hashed and copied but not inflated here: nothing compressed is opened
// before its signature and pins are checked (validate.ts, inflate.ts).
// An encrypted image entry (image.tar.age, image.tar.gz.age) is decrypted in the same pass
// (encryption.ts): only plaintext whose chunk authenticated is hashed, inspected and
// written, under the plain name, into the staging folder; the ciphertext is hashed too, on a
// worker thread in place in the reader's buffers (hash-thread.ts), beside the decryption.
import { createHash } from 'node:crypto';
import { type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CaissonError, toCaissonError } from '../errors.js';
import { checkEntry, MANIFEST_NAME, SIGNATURE_NAME } from './entry-rules.js';
import { ENCRYPTED_SUFFIX, PayloadDecryptor, type DecryptionKey } from './encryption.js';
import { packageIdOf } from './identity.js';
import { ThreadedHash } from './hash-thread.js';
import { ImageArchiveInspector, recordInspection, type InspectResult } from './image-inspector.js';
import { parseManifest } from './manifest.js';
import { MediumStalled, openSource, ReadAhead, withDeadline } from './source.js';
import { StagingArea, writeAll, writeAllv } from './staging-area.js';
import { TarParser } from './tar-parser.js';
import { YoungGarbage } from './young-garbage.js';
import {
  DEFAULT_STAGE_LIMITS,
  type Manifest,
  type ProgressFn,
  type StageLimits,
  type StagedPackage,
} from './types.js';

export interface StageOptions {
  limits?: Partial<StageLimits>;
  onProgress?: ProgressFn;
  /**
   * Parse manifest.toml as soon as it has been read (before a large image is copied), so a
   * bad manifest fails fast. Default true; the manifest.* codes are the same either way.
   */
  parseManifestEarly?: boolean;
  /**
   * Write image.tar into the staging folder (default true). False for a validation that
   * imports nothing: the image is hashed and inspected as it streams by, never written, and
   * `imagePath` names a file that does not exist. image.tar.gz is always written: it is
   * inflated only after validation has checked its signature and pins (inflate.ts).
   */
  copyImage?: boolean;
  /**
   * The keys this device decrypts with (its identity, device/identity.ts). Called only when
   * the image entry is encrypted; without it an encrypted package is crypto.no_matching_key.
   */
  decryptionKeys?: () => DecryptionKey[];
  /** Refuse a plain image entry at its header, before a byte of it is read (agent.toml require_encryption). */
  requireEncryption?: boolean;
  /** Encrypted entries at least this large hash their ciphertext on a worker thread (default HASH_THREAD_MIN_BYTES; tests lower it). */
  hashThreadMinBytes?: number;
}

type ImageName = 'image.tar' | 'image.tar.gz';

/** What an encrypted image entry needs while it streams by. */
interface Decrypting {
  entryName: string;
  decryptor: PayloadDecryptor;
  /** The ciphertext's digest, on a worker for a large entry. */
  hash: ThreadedHash;
  size: number;
  /** The decryptor's fresh plaintext buffers, collected after each MiB (young-garbage.ts). */
  garbage: YoungGarbage;
}

export async function stagePackage(sourcePath: string, stagingDir: string, opts: StageOptions = {}): Promise<StagedPackage> {
  const limits: StageLimits = { ...DEFAULT_STAGE_LIMITS, ...opts.limits };
  const { fh, stat } = await withDeadline(openSource(sourcePath), limits.stallMs, `opening ${sourcePath}`);
  const staging = new StagingArea(stagingDir);
  const threads: ThreadedHash[] = [];
  let stalled = false;
  try {
    if (stat.size > limits.maxPackageBytes) {
      throw new CaissonError('package.too_large', `the package is ${stat.size} bytes; this device accepts at most ${limits.maxPackageBytes}`);
    }
    await staging.init();
    const result = await streamPackage(fh, stat.size, staging, limits, opts, threads);
    await staging.syncDir();
    return result;
  } catch (err) {
    stalled = err instanceof MediumStalled;
    await staging.discard();
    throw toCaissonError(err, 'internal.error');
  } finally {
    for (const t of threads) t.close(); // a hashing thread of an entry cut short
    // a close on a medium that stopped answering would wait as long as the read did
    if (stalled) void fh.close().catch(() => undefined);
    else await fh.close().catch(() => undefined);
  }
}

async function streamPackage(
  fh: FileHandle,
  declaredSize: number,
  staging: StagingArea,
  limits: StageLimits,
  opts: StageOptions,
  threads: ThreadedHash[],
): Promise<StagedPackage> {
  const parser = new TarParser({ strict: true });
  const copyImage = opts.copyImage ?? true;
  const seen = new Set<string>();
  let manifestBytes: Buffer | undefined;
  let manifest: Manifest | undefined;
  let signature: Buffer | undefined;
  let image:
    | { name: ImageName; path: string; sha256: string; size: number; info: InspectResult | undefined; encryption: StagedPackage['encryption'] }
    | undefined;

  // The entry being copied right now.
  let cur:
    | { kind: 'small'; name: string; chunks: Buffer[]; size: number }
    | {
        kind: 'image';
        name: ImageName;
        out: FileHandle | undefined;
        hash: ReturnType<typeof createHash>;
        size: number;
        inspector: ImageArchiveInspector | undefined;
        decrypting: Decrypting | undefined;
      }
    | { kind: 'none' } = { kind: 'none' };

  const earlyManifest = opts.parseManifestEarly ?? true;
  const reader = new ReadAhead(fh, limits.stallMs);
  let done = 0;
  for (;;) {
    const chunk = await reader.next();
    if (chunk.length === 0) break;
    done += chunk.length;
    if (done > limits.maxPackageBytes) {
      throw new CaissonError('package.too_large', `the package grew beyond ${limits.maxPackageBytes} bytes while it was read`);
    }

    for (const ev of parser.feed(chunk)) {
      if (ev.kind === 'entry') {
        const e = ev.entry;
        checkEntry(e, seen, limits, declaredSize);
        if (e.path === MANIFEST_NAME || e.path === SIGNATURE_NAME) {
          cur = { kind: 'small', name: e.path, chunks: [], size: 0 };
        } else {
          const encrypted = e.path.endsWith(ENCRYPTED_SUFFIX);
          if (!encrypted && opts.requireEncryption) {
            throw new CaissonError('policy.encryption_required', `this device only accepts encrypted packages and ${e.path} is not encrypted`);
          }
          const name = (encrypted ? e.path.slice(0, -ENCRYPTED_SUFFIX.length) : e.path) as ImageName;
          const decrypting = encrypted ? startDecrypting(e.path, e.size, opts, manifest, reader.memory) : undefined;
          if (decrypting) threads.push(decrypting.hash);
          // image.tar.gz is never inflated here: it is opened after its signature and pins
          // were checked (inflate.ts), so it needs a copy even for a validation
          const gzipped = name === 'image.tar.gz';
          const out = copyImage || gzipped ? await staging.create(name) : undefined;
          const inspector = gzipped ? undefined : new ImageArchiveInspector();
          cur = { kind: 'image', name, out, hash: createHash('sha256'), size: 0, inspector, decrypting };
        }
      } else if (ev.kind === 'data') {
        if (cur.kind === 'small') {
          cur.chunks.push(Buffer.from(ev.data));
          cur.size += ev.data.length;
        } else if (cur.kind === 'image') {
          // plaintext comes out of the decryptor one 64 KiB chunk per buffer: they are
          // written together and hashed one by one, never joined into a copy
          const pieces = cur.decrypting ? decrypt(cur.decrypting, ev.data, reader) : [ev.data];
          if (pieces.length === 0) continue;
          // the write runs on the thread pool while this thread hashes the same bytes
          const written = cur.out ? writeAllv(cur.out, pieces, staging.dir) : undefined;
          written?.catch(() => undefined);
          for (const data of pieces) {
            cur.hash.update(data);
            cur.size += data.length;
            await cur.inspector?.write(data);
          }
          await written;
          if (cur.decrypting) cur.decrypting.garbage.dropped(pieces.reduce((n, p) => n + p.length, 0));
        }
      } else {
        if (cur.kind === 'small') {
          const bytes = Buffer.concat(cur.chunks, cur.size);
          const out = await staging.create(cur.name);
          await writeAll(out, bytes, staging.dir);
          await staging.finish(out);
          if (cur.name === MANIFEST_NAME) {
            manifestBytes = bytes;
            if (earlyManifest) manifest = parseManifest(bytes);
          } else {
            signature = bytes;
          }
        } else if (cur.kind === 'image') {
          cur.decrypting?.decryptor.finish();
          if (cur.out) await staging.finish(cur.out, false);
          const encryptedSha256 = await cur.decrypting?.hash.digest();
          cur.decrypting?.hash.close();
          image = {
            name: cur.name,
            path: join(staging.dir, cur.name),
            sha256: cur.hash.digest('hex'),
            size: cur.size,
            info: await cur.inspector?.finish(),
            encryption: cur.decrypting && {
              entryName: cur.decrypting.entryName,
              sha256: encryptedSha256!,
              size: cur.decrypting.size,
              recipients: cur.decrypting.decryptor.recipients,
            },
          };
        }
        cur = { kind: 'none' };
      }
    }
    opts.onProgress?.(done, declaredSize);
  }
  parser.end();
  if (!manifestBytes) throw new CaissonError('package.missing_manifest', 'the package has no manifest.toml');
  if (!image) throw new CaissonError('package.missing_image', 'the package has no image.tar');

  const staged: StagedPackage = {
    dir: staging.dir,
    packageId: packageIdOf(manifestBytes, image.name, image.sha256),
    packageSize: done,
    manifestBytes,
    imagePath: image.path,
    imageFileName: image.name,
    imageSha256: image.sha256,
    imageSize: image.size,
  };
  if (signature) staged.signature = signature;
  if (image.encryption) staged.encryption = image.encryption;
  recordInspection(staged, image.info);
  return staged;
}

/**
 * Start decrypting an image entry. When the manifest came first and names its recipients,
 * a package for other devices is refused here, before a byte of the image is read.
 */
function startDecrypting(entryName: string, size: number, opts: StageOptions, manifest: Manifest | undefined, memory: SharedArrayBuffer): Decrypting {
  const keys = opts.decryptionKeys ?? (() => []);
  const listed = manifest?.encryption?.recipients;
  if (listed) {
    const ids = keys().map((k) => k.id);
    if (!ids.some((id) => listed.includes(id))) {
      const who = ids.length ? ids.join(', ') : 'this device, which has no key yet';
      throw new CaissonError('crypto.no_matching_key', `the package is encrypted for ${listed.length} recipient${listed.length === 1 ? '' : 's'} (${listed.slice(0, 4).join(', ')}${listed.length > 4 ? ', …' : ''}), not for ${who}`);
    }
  }
  const decryptor = new PayloadDecryptor(size, { keys, listedRecipients: listed });
  return { entryName, decryptor, hash: new ThreadedHash(size, opts.hashThreadMinBytes, memory), size: 0, garbage: new YoungGarbage() };
}

/** Hash the ciphertext (in place, on the worker: its buffer is held until then) and return the plaintext that authenticated (maybe none). */
function decrypt(d: Decrypting, data: Buffer, reader: ReadAhead): Buffer[] {
  d.hash.update(data, d.hash.threaded ? reader.hold(data) : undefined);
  d.size += data.length;
  return d.decryptor.push(data).filter((p) => p.length > 0);
}
