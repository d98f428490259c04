// The package's source file: opened without following links or blocking on a FIFO, and read
// front to back with a deadline on every call, so a medium that stops answering fails the
// read (package.read_failed) instead of holding the queue.
import { constants as fsc, type Stats } from 'node:fs';
import { lstat, open, type FileHandle } from 'node:fs/promises';
import { CaissonError, describe } from '../errors.js';

export const READ_CHUNK = 1024 * 1024;

/** The package's medium did not answer one call within StageLimits.stallMs. */
export class MediumStalled extends CaissonError {}

/**
 * Wait for `work` at most `ms`. On time-out the call is abandoned, not cancelled (a read
 * stuck in the kernel cannot be): it keeps one thread of the pool until the medium answers
 * or goes away, and whatever it returns late (a file handle) is closed then.
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, doing: string): Promise<T> {
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
export async function openSource(path: string): Promise<{ fh: FileHandle; stat: Stats }> {
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

/** Buffers of the reader: one being worked on, one being read into, two the hashing thread may still hold. */
export const READ_SLOTS = 4;

/**
 * Reads the package front to back in READ_CHUNK pieces, one read always in flight ahead
 * of the piece being worked on, so the read (thread pool) overlaps hashing and writing
 * (this thread). READ_SLOTS buffers of shared memory, reused: memory stays flat whatever the
 * package size. A piece is valid until the next call after next(), unless it is held
 * (hold()): then its buffer is not read into again before it is released, so another thread
 * can hash it in place (hash-thread.ts).
 */
export class ReadAhead {
  /** The buffers' memory, shared so that a worker thread can read them in place. */
  readonly memory = new SharedArrayBuffer(READ_SLOTS * READ_CHUNK);
  private readonly slots: { buf: Buffer; holds: number; onFree: (() => void) | undefined }[] = [];
  private turn = 0;
  private pos = 0;
  private pending: Promise<Buffer>;

  constructor(
    private readonly fh: FileHandle,
    private readonly stallMs: number,
  ) {
    for (let i = 0; i < READ_SLOTS; i++) this.slots.push({ buf: Buffer.from(this.memory, i * READ_CHUNK, READ_CHUNK), holds: 0, onFree: undefined });
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

  /** Keep the buffer `piece` (returned by next(), or a part of it) from being read into until the returned function is called. */
  hold(piece: Buffer): () => void {
    const slot = this.slots.find((s) => s.buf.buffer === piece.buffer && piece.byteOffset >= s.buf.byteOffset && piece.byteOffset < s.buf.byteOffset + READ_CHUNK);
    if (!slot) return () => undefined;
    slot.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--slot.holds === 0 && slot.onFree) {
        const free = slot.onFree;
        slot.onFree = undefined;
        free();
      }
    };
  }

  private async readAt(pos: number): Promise<Buffer> {
    const slot = this.slots[this.turn++ % this.slots.length]!;
    if (slot.holds > 0) await new Promise<void>((resolve) => (slot.onFree = resolve));
    const buf = slot.buf;
    try {
      const { bytesRead } = await withDeadline(this.fh.read(buf, 0, buf.length, pos), this.stallMs, `reading at byte ${pos}`);
      return buf.subarray(0, bytesRead);
    } catch (err) {
      if (err instanceof MediumStalled) throw err;
      throw new CaissonError('package.read_failed', `reading the package failed at byte ${pos}: ${describe(err)}`, { cause: err });
    }
  }
}
