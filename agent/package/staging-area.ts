// The staging folder of one package: files Caisson creates itself (fixed names, O_EXCL, no
// links followed) and removes again when the package is refused.
import { constants as fsc } from 'node:fs';
import { lstat, mkdir, open, rm, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CaissonError, describe } from '../errors.js';

/** Files Caisson creates (O_EXCL, fixed names) and removes again on failure. */
export class StagingArea {
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

export async function writeAll(fh: FileHandle, data: Buffer, dir: string): Promise<void> {
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

/** Write `pieces` in order with as few calls as the kernel allows (writev). */
export async function writeAllv(fh: FileHandle, pieces: Buffer[], dir: string): Promise<void> {
  if (pieces.length === 1) return writeAll(fh, pieces[0]!, dir);
  let rest = pieces;
  while (rest.length > 0) {
    let written: number;
    try {
      ({ bytesWritten: written } = await fh.writev(rest));
    } catch (err) {
      throw stagingError(err, dir);
    }
    // drop what was written; a piece written in part keeps its tail
    let i = 0;
    while (i < rest.length && written >= rest[i]!.length) written -= rest[i++]!.length;
    rest = rest.slice(i);
    if (written > 0) rest[0] = rest[0]!.subarray(written);
  }
}
