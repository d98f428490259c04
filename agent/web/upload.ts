// An upload from the page becomes an inbox package exactly as a copy tool would make one:
// streamed to `<inbox>/web-…edgepkg.part`, synced, then renamed to `….edgepkg`. The inbox
// watcher takes it on the rename (same inode) and the usual pipeline and policy apply:
// signature rules, the maintenance window, reports in processed/ or failed/. A dropped
// connection, a body larger than announced or than the inbox accepts, or a full disk
// removes the .part file, so nothing partial is ever offered to the pipeline.
import { randomBytes } from 'node:crypto';
import { createWriteStream, statfsSync } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fsyncDir } from '../atomic.js';
import { PACKAGE_SUFFIX } from '../intake/inbox.js';
import { ApiError } from './http.js';

/** Room left on the inbox's filesystem beyond the upload itself. */
const SPARE_BYTES = 64 * 1024 * 1024;

export interface UploadOptions {
  inbox: string;
  maxBytes: number;
  /** The name the browser gave the file; only used, cleaned, as part of the inbox name. */
  name: string | null;
}

export interface UploadResult {
  file: string;
  size: number;
}

/** A safe inbox name: web-<UTC stamp>-<cleaned original name>.edgepkg */
export function inboxNameFor(original: string | null, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  let base = (original ?? '').split(/[\\/]/).pop() ?? '';
  if (base.toLowerCase().endsWith(PACKAGE_SUFFIX)) base = base.slice(0, -PACKAGE_SUFFIX.length);
  base = base.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[._-]+/, '').slice(0, 80);
  return `web-${stamp}-${base || 'upload'}${PACKAGE_SUFFIX}`;
}

/** The announced length, checked before anything else happens (no slot taken, no file made). */
export function announcedLength(req: IncomingMessage, maxBytes: number): number {
  const length = Number(req.headers['content-length']);
  if (req.headers['transfer-encoding'] || !Number.isSafeInteger(length)) {
    throw new ApiError(411, 'web.bad_request', 'send the package with a Content-Length');
  }
  if (length <= 0) throw new ApiError(400, 'web.bad_request', 'the package is empty');
  if (length > maxBytes) throw new ApiError(413, 'web.too_large', `the package is ${length} bytes; this device accepts at most ${maxBytes}`);
  return length;
}

export async function receiveUpload(req: IncomingMessage, opts: UploadOptions): Promise<UploadResult> {
  const length = announcedLength(req, opts.maxBytes);
  const fs = statfsSync(opts.inbox);
  const free = fs.bavail * fs.bsize;
  if (free < length + SPARE_BYTES) throw new ApiError(507, 'web.no_space', `the inbox has ${free} bytes free; the package needs ${length} and some room to spare`);

  let name = inboxNameFor(opts.name);
  if (await exists(join(opts.inbox, name))) name = name.replace(PACKAGE_SUFFIX, `-${randomBytes(3).toString('hex')}${PACKAGE_SUFFIX}`);
  const final = join(opts.inbox, name);
  const part = `${final}.part`;
  let received = 0;
  try {
    const limit = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        if (received > length) cb(new ApiError(400, 'web.upload_failed', 'the body is longer than its Content-Length'));
        else cb(null, chunk);
      },
    });
    await pipeline(req, limit, createWriteStream(part, { flags: 'wx', mode: 0o640 }));
    if (received !== length) throw new ApiError(400, 'web.upload_failed', `the upload ended after ${received} of ${length} bytes`);
    // on disk before it is offered: the pipeline must never see half a package after a power cut
    const fh = await open(part, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(part, final);
    fsyncDir(opts.inbox);
    return { file: final, size: received };
  } catch (err) {
    await rm(part, { force: true });
    if (err instanceof ApiError) throw err;
    throw new ApiError(400, 'web.upload_failed', `the upload did not complete after ${received} of ${length} bytes (${(err as Error).message})`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
