// Every file operation on a stick, anchored at a directory handle. A stick is hostile
// input: any name on it may be a link (to a folder elsewhere, to /dev/zero), a FIFO, a
// device or a folder where a file is expected. So:
//  - the mount point is opened once as a directory (O_NOFOLLOW) and every later name is
//    resolved from that handle, one plain component at a time, through /proc/self/fd/N
//    (Node has no openat(); the kernel resolves /proc/self/fd/N to the very folder the
//    handle holds, and O_NOFOLLOW then applies to the one name below it);
//  - folders are opened O_DIRECTORY|O_NOFOLLOW, so a link or a FIFO in their place fails
//    without being followed or opened;
//  - files are only ever created (O_CREAT|O_EXCL|O_NOFOLLOW): an existing name of any
//    kind is never opened, read or written through; the one fixed-name file is written
//    under a fresh name and renamed over the old one (rename replaces a link, never
//    follows it);
//  - nothing is ever read from the stick here except folder listings.
// These calls are synchronous on purpose: they run in a child process (stick-child.ts)
// that the agent kills when the stick does not answer, so a hung stick never blocks it.
import {
  closeSync,
  constants as fsc,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';

const DIR_FLAGS = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;
const CREATE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;
/** How many `-N` suffixes a report name may try before the delivery gives up. */
export const MAX_NAME_ATTEMPTS = 100;

/** A folder on the stick, held open. */
export interface DirHandle {
  fd: number;
  dev: number;
}

/** One plain name: no slash, not `.`/`..`, no NUL. Everything below a handle goes through this. */
export function plainName(name: string): string {
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new Error(`not a plain file name: ${JSON.stringify(name)}`);
  }
  return name;
}

/** The path of `name` inside the folder that `dir` holds open. */
export function at(dir: DirHandle, name: string): string {
  return `/proc/self/fd/${dir.fd}/${plainName(name)}`;
}

/**
 * Open the stick's mount point. It must be a folder on another filesystem than its
 * parent: the empty folder a removed stick leaves behind is refused.
 */
export function openMountPoint(mountpoint: string): DirHandle {
  const fd = openSync(mountpoint, DIR_FLAGS);
  try {
    const st = fstatSync(fd);
    if (!st.isDirectory()) throw new Error(`${mountpoint} is not a folder`);
    if (st.dev === statSync(dirname(mountpoint)).dev) throw new Error(`${mountpoint} is not mounted (stick removed)`);
    return { fd, dev: st.dev };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** A folder directly below `parent`: created when missing, never a link, on the same filesystem. */
export function openSubdir(parent: DirHandle, name: string, create: boolean): DirHandle {
  let created = false;
  if (create) {
    try {
      mkdirSync(at(parent, name), 0o755);
      created = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  let fd: number;
  try {
    fd = openSync(at(parent, name), DIR_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') throw new Error(`${name} on the stick is not a folder (a link or another kind of file); refusing to use it`);
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isDirectory() || st.dev !== parent.dev) throw new Error(`${name} on the stick is not a plain folder of the stick`);
    if (created) fsyncSync(parent.fd);
    return { fd, dev: st.dev };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

export function closeDir(dir: DirHandle): void {
  closeSync(dir.fd);
}

/**
 * Create `name` with `data`, flushed, or throw (EEXIST when the name is taken by anything
 * at all). A partly written file is removed again.
 */
export function createFile(dir: DirHandle, name: string, data: Buffer): void {
  const fd = openSync(at(dir, name), CREATE_FLAGS, 0o644);
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    tryUnlink(dir, name);
    throw err;
  }
  closeSync(fd);
}

/** Replace `name` as a whole: a fresh file, flushed, renamed over it, then the folder flushed. */
export function replaceFile(dir: DirHandle, name: string, data: Buffer): void {
  const tmp = `.${name}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  createFile(dir, tmp, data);
  try {
    renameSync(at(dir, tmp), at(dir, name));
  } catch (err) {
    tryUnlink(dir, tmp);
    throw err;
  }
  fsyncSync(dir.fd);
}

/**
 * Create `<base>.<ext>` for every extension under the first free name `<base>`,
 * `<base>-2`, …; returns the name used. Free means none of the files exists, as anything.
 */
export function createNamedSet(dir: DirHandle, base: string, files: { ext: string; data: Buffer }[]): string {
  for (let n = 1; n <= MAX_NAME_ATTEMPTS; n++) {
    const name = n === 1 ? base : `${base}-${n}`;
    const made: string[] = [];
    let taken = false;
    try {
      for (const f of files) {
        const file = `${name}.${f.ext}`;
        try {
          createFile(dir, file, f.data);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          taken = true;
          break;
        }
        made.push(file);
      }
    } catch (err) {
      for (const m of made) tryUnlink(dir, m);
      throw err;
    }
    if (!taken) return name;
    for (const m of made) tryUnlink(dir, m);
  }
  throw new Error(`${MAX_NAME_ATTEMPTS} report names starting with ${base} are taken on the stick`);
}

/**
 * Names of the regular files directly in `dir` whose lower-cased name ends with `suffix`
 * and does not start with a dot, sorted. Types come from the listing (or lstat), never
 * from opening or following anything.
 */
export function listRegularFiles(dir: DirHandle, suffix: string): string[] {
  const entries = readdirSync(`/proc/self/fd/${dir.fd}`, { withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && !e.name.startsWith('.') && e.name.toLowerCase().endsWith(suffix))
    .map((e) => e.name)
    .sort();
}

function tryUnlink(dir: DirHandle, name: string): void {
  try {
    unlinkSync(at(dir, name));
  } catch {
    // the stick failed or went away; the original error matters
  }
}
