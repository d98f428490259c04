// Stage an .edgepkg: one streaming pass over the file that checks the tar structure strictly
// and copies the allowlisted entries into files Caisson creates itself (fixed names) in the
// staging folder. image.tar is hashed while it is copied and read as a docker-save archive
// in the same pass (its manifest.json only); the package's identity is derived from that
// digest and the manifest (identity.ts), so every byte is hashed once. Memory stays flat.
// image.tar.gz is hashed and copied but not inflated here: nothing compressed is opened
// before its signature and pins are checked (validate.ts, inflate.ts).
import { createHash } from 'node:crypto';
import { constants as fsc, type Stats } from 'node:fs';
import { lstat, mkdir, open, rm, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { createGunzip, type Gunzip } from 'node:zlib';
import { CaissonError, describe, toCaissonError } from '../errors.js';
import { packageIdOf } from './identity.js';
import { parseManifest } from './manifest.js';
import { ImageArchiveReader, type InspectResult } from './image-archive.js';
import { TarParser, type TarEntry } from './tar-stream.js';
import {
  DEFAULT_STAGE_LIMITS,
  type ProgressFn,
  type StageLimits,
  type StagedPackage,
} from './types.js';

export const READ_CHUNK = 1024 * 1024;

export const MANIFEST_NAME = 'manifest.toml';
export const SIGNATURE_NAME = 'manifest.toml.sig';
export const IMAGE_NAMES = ['image.tar', 'image.tar.gz'] as const;
const ALLOWED = new Set<string>([MANIFEST_NAME, SIGNATURE_NAME, ...IMAGE_NAMES]);

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
}

export async function stagePackage(sourcePath: string, stagingDir: string, opts: StageOptions = {}): Promise<StagedPackage> {
  const limits: StageLimits = { ...DEFAULT_STAGE_LIMITS, ...opts.limits };
  const { fh, stat } = await withDeadline(openSource(sourcePath), limits.stallMs, `opening ${sourcePath}`);
  const staging = new StagingArea(stagingDir);
  let stalled = false;
  try {
    if (stat.size > limits.maxPackageBytes) {
      throw new CaissonError('package.too_large', `the package is ${stat.size} bytes; this device accepts at most ${limits.maxPackageBytes}`);
    }
    await staging.init();
    const result = await streamPackage(fh, stat.size, staging, limits, opts);
    await staging.syncDir();
    return result;
  } catch (err) {
    stalled = err instanceof MediumStalled;
    await staging.discard();
    throw toCaissonError(err, 'internal.error');
  } finally {
    // a close on a medium that stopped answering would wait as long as the read did
    if (stalled) void fh.close().catch(() => undefined);
    else await fh.close().catch(() => undefined);
  }
}

/** The package's medium did not answer one call within StageLimits.stallMs. */
class MediumStalled extends CaissonError {}

/**
 * Wait for `work` at most `ms`. On time-out the call is abandoned, not cancelled (a read
 * stuck in the kernel cannot be): it keeps one thread of the pool until the medium answers
 * or goes away, and whatever it returns late (a file handle) is closed then.
 */
async function withDeadline<T>(work: Promise<T>, ms: number, doing: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void work.then(
        (v) => (v as { fh?: FileHandle } | undefined)?.fh?.close().catch(() => undefined),
        () => undefined,
      );
      reject(new MediumStalled('package.read_failed', `the medium stopped answering: ${doing} took over ${Math.round(ms / 1000)} s`));
    }, ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Open without following links and without blocking on FIFOs; only regular files pass. */
async function openSource(path: string): Promise<{ fh: FileHandle; stat: Stats }> {
  let pre: Stats;
  try {
    pre = await lstat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new CaissonError('package.not_found', `no such package: ${path}`);
    throw new CaissonError('package.read_failed', `cannot read ${path}: ${describe(err)}`, { cause: err });
  }
  if (!pre.isFile()) throw new CaissonError('package.not_regular_file', `${path} is ${kindOf(pre)}, not a regular file`);
  let fh: FileHandle;
  try {
    fh = await open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CaissonError('package.not_found', `no such package: ${path}`);
    if (code === 'ELOOP') throw new CaissonError('package.not_regular_file', `${path} is a symbolic link, not a regular file`);
    throw new CaissonError('package.read_failed', `cannot open ${path}: ${describe(err)}`, { cause: err });
  }
  try {
    const stat = await fh.stat();
    if (!stat.isFile() || stat.ino !== pre.ino || stat.dev !== pre.dev) {
      throw new CaissonError('package.not_regular_file', `${path} is ${kindOf(stat)} (or was replaced while opening), not a regular file`);
    }
    return { fh, stat };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

function kindOf(s: Stats): string {
  if (s.isSymbolicLink()) return 'a symbolic link';
  if (s.isDirectory()) return 'a folder';
  if (s.isFIFO()) return 'a FIFO (named pipe)';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** Files Caisson creates (O_EXCL, fixed names) and removes again on failure. */
class StagingArea {
  private createdDir = false;
  private readonly files: string[] = [];
  private readonly open = new Set<FileHandle>();

  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    try {
      await mkdir(this.dir, { mode: 0o700 });
      this.createdDir = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        await mkdir(this.dir, { recursive: true, mode: 0o700 });
        this.createdDir = true;
        return;
      }
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw stagingError(err, this.dir);
      const st = await lstat(this.dir);
      if (!st.isDirectory()) throw new CaissonError('internal.error', `staging folder ${this.dir} is not a folder`);
    }
  }

  async create(name: string): Promise<FileHandle> {
    const path = join(this.dir, name);
    let fh: FileHandle;
    try {
      fh = await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    } catch (err) {
      throw stagingError(err, path);
    }
    this.files.push(path);
    this.open.add(fh);
    return fh;
  }

  /**
   * Close a staged file; `sync` flushes it first. The image copy is not flushed: recovery
   * discards every update that stopped before `switching` (pipeline/states.ts) and never
   * reads a staged file again after a restart, so forcing a large image out to slow flash
   * would only make the update wait. The import reads it back from the page cache.
   */
  async finish(fh: FileHandle, sync = true): Promise<void> {
    try {
      if (sync) await fh.sync();
    } catch (err) {
      throw stagingError(err, this.dir);
    } finally {
      this.open.delete(fh);
      await fh.close();
    }
  }

  async syncDir(): Promise<void> {
    const d = await open(this.dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  async discard(): Promise<void> {
    for (const fh of this.open) await fh.close().catch(() => undefined);
    this.open.clear();
    for (const f of this.files) await unlink(f).catch(() => undefined);
    if (this.createdDir) {
      await rmdir(this.dir).catch(() => rm(this.dir, { recursive: true, force: true }).catch(() => undefined));
    }
  }
}

function stagingError(err: unknown, path: string): CaissonError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new CaissonError('disk.insufficient', `no space left while staging into ${path}`, { cause: err });
  }
  return new CaissonError('internal.error', `cannot write ${path}: ${describe(err)}`, { cause: err });
}

async function streamPackage(
  fh: FileHandle,
  declaredSize: number,
  staging: StagingArea,
  limits: StageLimits,
  opts: StageOptions,
): Promise<StagedPackage> {
  const parser = new TarParser({ strict: true });
  const copyImage = opts.copyImage ?? true;
  const seen = new Set<string>();
  let manifestBytes: Buffer | undefined;
  let signature: Buffer | undefined;
  let image: { name: 'image.tar' | 'image.tar.gz'; path: string; sha256: string; size: number; info: InspectResult | undefined } | undefined;

  // The entry being copied right now.
  let cur:
    | { kind: 'small'; name: string; chunks: Buffer[]; size: number }
    | { kind: 'image'; name: 'image.tar' | 'image.tar.gz'; out: FileHandle | undefined; hash: ReturnType<typeof createHash>; size: number; inspector: ImageArchiveInspector | undefined }
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
          const name = e.path as 'image.tar' | 'image.tar.gz';
          // image.tar.gz is never inflated here: it is opened after its signature and pins
          // were checked (inflate.ts), so it needs a copy even for a validation
          const gzipped = name === 'image.tar.gz';
          const out = copyImage || gzipped ? await staging.create(name) : undefined;
          const inspector = gzipped ? undefined : new ImageArchiveInspector();
          cur = { kind: 'image', name, out, hash: createHash('sha256'), size: 0, inspector };
        }
      } else if (ev.kind === 'data') {
        if (cur.kind === 'small') {
          cur.chunks.push(Buffer.from(ev.data));
          cur.size += ev.data.length;
        } else if (cur.kind === 'image') {
          // the write runs on the thread pool while this thread hashes the same bytes
          const written = cur.out ? writeAll(cur.out, ev.data, staging.dir) : undefined;
          written?.catch(() => undefined);
          cur.hash.update(ev.data);
          cur.size += ev.data.length;
          await cur.inspector?.write(ev.data);
          await written;
        }
      } else {
        if (cur.kind === 'small') {
          const bytes = Buffer.concat(cur.chunks, cur.size);
          const out = await staging.create(cur.name);
          await writeAll(out, bytes, staging.dir);
          await staging.finish(out);
          if (cur.name === MANIFEST_NAME) {
            manifestBytes = bytes;
            if (earlyManifest) parseManifest(bytes);
          } else {
            signature = bytes;
          }
        } else if (cur.kind === 'image') {
          if (cur.out) await staging.finish(cur.out, false);
          image = {
            name: cur.name,
            path: join(staging.dir, cur.name),
            sha256: cur.hash.digest('hex'),
            size: cur.size,
            info: await cur.inspector?.finish(),
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
  if (image.info?.info) staged.imageArchive = image.info.info;
  else if (image.info?.problem) staged.imageArchiveProblem = image.info.problem;
  return staged;
}

/**
 * Reads the package front to back in READ_CHUNK pieces, one read always in flight ahead
 * of the piece being worked on, so the read (thread pool) overlaps hashing and writing
 * (this thread). Two buffers, reused: memory stays flat whatever the package size. A
 * piece is valid until the next call after next().
 */
class ReadAhead {
  private readonly bufs = [Buffer.allocUnsafeSlow(READ_CHUNK), Buffer.allocUnsafeSlow(READ_CHUNK)];
  private turn = 0;
  private pos = 0;
  private pending: Promise<Buffer>;

  constructor(
    private readonly fh: FileHandle,
    private readonly stallMs: number,
  ) {
    this.pending = this.readAt(0);
  }

  async next(): Promise<Buffer> {
    const chunk = await this.pending;
    this.pos += chunk.length;
    if (chunk.length > 0) {
      this.pending = this.readAt(this.pos);
      this.pending.catch(() => undefined); // a failure surfaces at the next call; never unhandled
    }
    return chunk;
  }

  private async readAt(pos: number): Promise<Buffer> {
    const buf = this.bufs[this.turn++ % this.bufs.length]!;
    try {
      const { bytesRead } = await withDeadline(this.fh.read(buf, 0, buf.length, pos), this.stallMs, `reading at byte ${pos}`);
      return buf.subarray(0, bytesRead);
    } catch (err) {
      if (err instanceof MediumStalled) throw err;
      throw new CaissonError('package.read_failed', `reading the package failed at byte ${pos}: ${describe(err)}`, { cause: err });
    }
  }
}

async function writeAll(fh: FileHandle, data: Buffer, dir: string): Promise<void> {
  let off = 0;
  while (off < data.length) {
    try {
      const { bytesWritten } = await fh.write(data, off, data.length - off);
      off += bytesWritten;
    } catch (err) {
      throw stagingError(err, dir);
    }
  }
}

/** Path safety first, then extended-header agreement, then entry type, name, duplicates, size. */
function checkEntry(e: TarEntry, seen: Set<string>, limits: StageLimits, packageSize: number): void {
  for (const p of [e.headerPath, e.paxPath, e.gnuLongName]) if (p !== undefined) checkSafePath(p, e.offset);
  if (e.paxPath !== undefined && e.paxPath !== e.headerPath) {
    throw new CaissonError('package.header_mismatch', `the pax path "${show(e.paxPath)}" disagrees with the header name "${show(e.headerPath)}" at byte ${e.offset}`);
  }
  if (e.gnuLongName !== undefined && e.gnuLongName !== e.headerPath) {
    throw new CaissonError('package.header_mismatch', `the GNU long name "${show(e.gnuLongName)}" disagrees with the header name "${show(e.headerPath)}" at byte ${e.offset}`);
  }
  if (e.paxSize !== undefined && e.paxSize !== e.headerSize) {
    throw new CaissonError('package.header_mismatch', `the pax size ${e.paxSize} disagrees with the header size ${e.headerSize} for "${show(e.path)}"`);
  }
  if (e.type === 'hardlink' || e.type === 'symlink') {
    throw new CaissonError('package.link_entry', `"${show(e.path)}" is a ${e.type === 'symlink' ? 'symbolic' : 'hard'} link; links are not allowed`);
  }
  if (e.type !== 'file') {
    throw new CaissonError('package.special_entry', `"${show(e.path)}" is a ${describeType(e)}; only regular files are allowed`);
  }
  if (e.linkpath !== '') {
    throw new CaissonError('package.header_mismatch', `regular file "${show(e.path)}" carries a link target`);
  }
  if (!ALLOWED.has(e.path)) {
    throw new CaissonError('package.unexpected_entry', `unexpected entry "${show(e.path)}"; only manifest.toml, image.tar (or image.tar.gz) and manifest.toml.sig are allowed`);
  }
  const isImage = e.path === 'image.tar' || e.path === 'image.tar.gz';
  if (seen.has(e.path)) {
    throw new CaissonError('package.duplicate_entry', `"${e.path}" appears twice (a package holds one manifest, one image, one signature)`);
  }
  if (isImage && (seen.has('image.tar') || seen.has('image.tar.gz'))) {
    throw new CaissonError('package.duplicate_entry', `"${e.path}" is a second image (a package holds exactly one image)`);
  }
  seen.add(e.path);
  if (e.path === MANIFEST_NAME && e.size > limits.maxManifestBytes) {
    throw new CaissonError('manifest.too_large', `manifest.toml is ${e.size} bytes (limit ${limits.maxManifestBytes})`);
  }
  if (e.path === SIGNATURE_NAME && e.size > limits.maxSignatureBytes) {
    throw new CaissonError('package.entry_too_large', `manifest.toml.sig is ${e.size} bytes (limit ${limits.maxSignatureBytes})`);
  }
  if (e.size > limits.maxPackageBytes) {
    throw new CaissonError('package.entry_too_large', `"${e.path}" declares ${e.size} bytes, more than a package may hold (${limits.maxPackageBytes})`);
  }
  const end = e.offset + 512 + e.size;
  if (end > packageSize) {
    throw new CaissonError('package.truncated', `"${e.path}" declares ${e.size} bytes but the package ends ${end - packageSize} bytes early`);
  }
}

function describeType(e: TarEntry): string {
  switch (e.type) {
    case 'directory':
      return 'folder';
    case 'chardev':
      return 'character device';
    case 'blockdev':
      return 'block device';
    case 'fifo':
      return 'FIFO';
    case 'contiguous':
      return 'contiguous file';
    default:
      return `tar entry of type '${show(e.typeflag)}'`;
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Reject empty, absolute, backslash, `..` and control-character names. */
export function checkSafePath(p: string, offset = 0): void {
  const why =
    p === ''
      ? 'an empty name'
      : CONTROL.test(p)
        ? 'a name with NUL or control characters'
        : p.startsWith('/')
          ? 'an absolute path'
          : p.includes('\\')
            ? 'a backslash in the name'
            : p.split('/').includes('..')
              ? 'a ".." component'
              : undefined;
  if (why) throw new CaissonError('package.path_escape', `entry at byte ${offset} has ${why}: "${show(p)}"`);
}

function show(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f"\\]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`).slice(0, 120);
}

// --- the docker-save archive inside (its rules: image-archive.ts) -----------------------------

export type { InspectResult } from './image-archive.js';

/**
 * Reads a docker-save archive as it streams by (image-archive.ts), optionally gunzipping it
 * first (image.tar.gz). Never throws from write(): a broken archive just yields a `problem`.
 */
export class ImageArchiveInspector {
  private readonly archive = new ImageArchiveReader();
  private readonly gunzip: Gunzip | undefined;
  private gunzipDone: Promise<unknown> | undefined;

  constructor(gzipped = false) {
    if (gzipped) {
      const gz = createGunzip();
      this.gunzip = gz;
      gz.on('data', (d: Buffer) => this.feed(d));
      gz.on('error', (err) => this.setProblem(`its gzip stream is broken (${describe(err)})`));
      this.gunzipDone = once(gz, 'end').catch(() => undefined);
    }
  }

  async write(data: Buffer): Promise<void> {
    if (this.problem) return;
    if (this.gunzip) {
      // a copy: the read buffer is reused while zlib may still hold on to the chunk
      if (!this.gunzip.write(Buffer.from(data))) await Promise.race([once(this.gunzip, 'drain'), once(this.gunzip, 'close')]);
      return;
    }
    this.feed(data);
  }

  async finish(): Promise<InspectResult> {
    if (this.gunzip) {
      if (!this.problem) {
        this.gunzip.end();
        await this.gunzipDone;
      } else {
        this.gunzip.destroy();
      }
    }
    return this.archive.finish();
  }

  private get problem(): boolean {
    return this.archive.failed;
  }

  private setProblem(p: string): void {
    this.archive.fail(p);
  }

  private feed(data: Buffer): void {
    this.archive.write(data);
  }
}
