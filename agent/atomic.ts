// Crash-safe file writes in folders Caisson owns (inbox reports, the compose override, the
// status page's password hash): write a temporary file in the same folder, fsync it, rename
// it over the target, fsync the folder. A reader (or a power cut at any moment) sees the old
// file or the new one, never half of one; when the call returns, the new file is on the
// medium. Sticks are hostile and get their own calls, anchored at the mount point
// (report/stick-fs.ts).
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync, constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/** `mode` applies from the first byte (0600 for secrets). */
export function writeFileAtomic(target: string, data: string | Buffer, opts: { mode?: number } = {}): void {
  const dir = dirname(target);
  const tmp = join(dir, `.${basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let fd: number | undefined;
  try {
    // O_NOFOLLOW: never write through a link someone left on the stick
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, opts.mode ?? 0o644);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already failing; the original error matters
      }
    }
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dir);
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
