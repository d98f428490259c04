// Loading a `docker save` archive into the engine: a streamed upload with flat memory, and
// the engine's progress stream read to the end (it answers 200 even for a broken archive).
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import http from 'node:http';
import { CaissonError, describe } from '../errors.js';
import { dockerError, socketPathOf, type Docker } from './docker-client.js';

export interface LoadProgressEvent {
  status?: string;
  stream?: string;
  id?: string;
  progress?: string;
  /** Bytes of the layer being unpacked ("Loading layer" events). */
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
}

export interface LoadResult {
  /** References ("repo:tag") and image IDs the engine reported as loaded. */
  loadedRefs: string[];
  loadedIds: string[];
  events: LoadProgressEvent[];
}

/**
 * Stream a `docker save` archive (plain or gzip-compressed) into the engine. The engine
 * answers 200 even for a broken archive; the failure is an `error` field in the progress
 * stream, so every event is checked. Throws docker.load_failed (or docker.unreachable).
 */
export async function loadImageFromFile(
  docker: Docker,
  path: string,
  opts: {
    onProgress?: (event: LoadProgressEvent) => void;
    onBytes?: (done: number, total: number) => void;
    /** The whole archive was handed to the engine's connection; the file is not read again. */
    onUploaded?: () => void;
  } = {},
): Promise<LoadResult> {
  let total = 0;
  try {
    total = (await stat(path)).size;
  } catch (err) {
    throw new CaissonError('docker.load_failed', `cannot read the image file ${path}: ${describe(err)}`, { cause: err });
  }
  const socketPath = socketPathOf(docker);
  const response = socketPath ? await postImageArchive(socketPath, path, total, opts) : await loadThroughDockerode(docker, path, total, opts.onBytes);
  const events = await followLoadProgress(docker, response, opts.onProgress);
  return { ...loadedImages(events), events };
}

/** A client without a unix socket (never the agent's): dockerode's own upload. */
async function loadThroughDockerode(docker: Docker, path: string, total: number, onBytes?: (done: number, total: number) => void): Promise<NodeJS.ReadableStream> {
  const file = createReadStream(path, { highWaterMark: 1024 * 1024 });
  if (onBytes) {
    let done = 0;
    file.on('data', (chunk) => onBytes((done += chunk.length), total));
  }
  try {
    return await docker.loadImage(file, {});
  } catch (err) {
    file.destroy();
    throw dockerError(err, 'the engine refused the image', 'docker.load_failed');
  }
}

/** Every event of the engine's progress stream; its first `error` is the load's failure. */
async function followLoadProgress(
  docker: Docker,
  response: NodeJS.ReadableStream,
  onProgress?: (event: LoadProgressEvent) => void,
): Promise<LoadProgressEvent[]> {
  const events: LoadProgressEvent[] = [];
  let firstError: string | undefined;
  await new Promise<void>((resolve, reject) => {
    const onFinished = (err: unknown) => {
      if (err) reject(dockerError(err, 'loading the image failed', 'docker.load_failed'));
      else resolve();
    };
    const onEvent = (event: LoadProgressEvent) => {
      events.push(event);
      const msg = event.error ?? event.errorDetail?.message;
      if (msg !== undefined && firstError === undefined) firstError = String(msg);
      onProgress?.(event);
    };
    try {
      docker.modem.followProgress(response, onFinished, onEvent);
    } catch (err) {
      reject(dockerError(err, 'reading the engine\'s answer failed', 'docker.load_failed'));
    }
  });
  if (firstError !== undefined) {
    throw new CaissonError('docker.load_failed', `the engine refused the image: ${firstError.trim()}`);
  }
  return events;
}

/** The references and image IDs the engine said it loaded ("Loaded image: …" lines). */
function loadedImages(events: LoadProgressEvent[]): { loadedRefs: string[]; loadedIds: string[] } {
  const loadedRefs: string[] = [];
  const loadedIds: string[] = [];
  for (const e of events) {
    const text = e.stream ?? e.status ?? '';
    for (const line of text.split('\n')) {
      const ref = /^Loaded image: (.+)$/.exec(line.trim());
      if (ref?.[1]) loadedRefs.push(ref[1]);
      const id = /^Loaded image ID: (sha256:[0-9a-f]{64})$/.exec(line.trim());
      if (id?.[1]) loadedIds.push(id[1]);
    }
  }
  return { loadedRefs, loadedIds };
}

const UPLOAD_CHUNK = 1024 * 1024;
const UPLOAD_BUFFERS = 2;

/**
 * POST an archive to the engine's /images/load from a couple of reused 1 MiB buffers, each
 * refilled only once the socket has taken it. Piping a read stream (what dockerode does)
 * allocates a fresh buffer for every read and V8 frees them lazily: the process grew by
 * ~35 MB during a 200 MB import. This keeps the import's memory flat whatever the image
 * size, and lets the file read overlap the socket write. Resolves with the engine's answer
 * (the progress stream) once the whole archive was sent.
 */
async function postImageArchive(
  socketPath: string,
  path: string,
  total: number,
  { onBytes, onUploaded }: { onBytes?: (done: number, total: number) => void; onUploaded?: () => void },
): Promise<NodeJS.ReadableStream> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new CaissonError('docker.load_failed', `cannot read the image file ${path}: ${describe(err)}`, { cause: err });
  }
  const upload = openUpload(socketPath);
  try {
    await sendFile(fh, path, total, upload, onBytes);
    upload.req.end();
    onUploaded?.(); // before the answer, which ends only once the engine unpacked everything
  } catch (err) {
    if (!upload.early) {
      upload.req.destroy();
      if (err instanceof CaissonError) throw err;
      const cause = upload.failed ?? err;
      if ((cause as { code?: unknown } | null)?.code === 'ERR_STREAM_DESTROYED') {
        // the connection broke under a pending write: the engine went away mid-upload
        throw new CaissonError('docker.unreachable', `the Docker engine went away during the import (${describe(cause)})`, { cause });
      }
      throw dockerError(cause, 'sending the image to the engine failed', 'docker.load_failed');
    }
    // the engine refused before it had everything: its answer says why (read below)
  } finally {
    await fh.close().catch(() => undefined);
  }
  let res: http.IncomingMessage;
  try {
    res = await upload.answer;
  } catch (err) {
    throw dockerError(err, 'the engine refused the image', 'docker.load_failed');
  }
  if (res.statusCode !== 200) {
    const message = await refusalOf(res);
    upload.req.destroy();
    throw new CaissonError('docker.load_failed', `the engine refused the image: ${message}`);
  }
  return res;
}

interface Upload {
  req: http.ClientRequest;
  /** The engine's answer (its progress stream when 200). */
  answer: Promise<http.IncomingMessage>;
  /** Rejects as soon as the upload must end early: the connection failed or closed, or the engine said no. */
  interrupted: Promise<never>;
  /** The connection's own error, once there is one. */
  failed?: unknown;
  /** The engine answered (not 200) before it had the whole archive. */
  early: boolean;
}

/** The chunked POST to /images/load, and the promises the sending loop watches. */
function openUpload(socketPath: string): Upload {
  const req = http.request({
    socketPath,
    method: 'POST',
    // quiet=0: the engine reports how far it has unpacked each layer (the longest part)
    path: '/images/load?quiet=0',
    agent: false,
    headers: { 'Content-Type': 'application/x-tar', 'Transfer-Encoding': 'chunked' },
  });
  const upload = { req, early: false } as Upload;
  upload.answer = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', (err) => {
      upload.failed ??= err;
      reject(err);
    });
  });
  upload.answer.catch(() => undefined); // surfaced by the caller
  upload.interrupted = new Promise<never>((_resolve, reject) => {
    req.once('error', (err) => reject(err));
    req.once('close', () => reject(upload.failed ?? Object.assign(new Error('the engine closed the connection during the upload'), { code: 'ECONNRESET' })));
    req.once('response', (res) => {
      if (res.statusCode === 200) return;
      upload.early = true;
      reject(new Error(`HTTP ${res.statusCode}`));
    });
  });
  upload.interrupted.catch(() => undefined);
  return upload;
}

/** Write the whole file into the request, each buffer refilled once the socket took it. */
async function sendFile(
  fh: Awaited<ReturnType<typeof open>>,
  path: string,
  total: number,
  upload: Upload,
  onBytes?: (done: number, total: number) => void,
): Promise<void> {
  const buffers = Array.from({ length: UPLOAD_BUFFERS }, () => Buffer.allocUnsafeSlow(UPLOAD_CHUNK));
  const sent: Array<Promise<void> | undefined> = buffers.map(() => undefined);
  let pos = 0;
  for (let i = 0; ; i++) {
    const k = i % buffers.length;
    await Promise.race([sent[k], upload.interrupted]); // the socket is done with this buffer
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(buffers[k]!, 0, UPLOAD_CHUNK, pos));
    } catch (err) {
      throw new CaissonError('docker.load_failed', `reading ${path} failed at byte ${pos}: ${describe(err)}`, { cause: err });
    }
    if (n === 0) break;
    pos += n;
    const p = new Promise<void>((resolve, reject) => upload.req.write(buffers[k]!.subarray(0, n), (err) => (err ? reject(err) : resolve())));
    p.catch(() => undefined);
    sent[k] = p;
    onBytes?.(pos, total);
  }
  await Promise.race([Promise.all(sent), upload.interrupted]);
}

/** What the engine said when it refused the archive (its JSON `message`, else the body text). */
async function refusalOf(res: http.IncomingMessage): Promise<string> {
  let body = '';
  res.setEncoding('utf8');
  for await (const part of res) {
    if (body.length < 64 * 1024) body += part as string;
  }
  let message = body.trim();
  try {
    message = (JSON.parse(body) as { message?: string }).message ?? message;
  } catch {
    // not JSON: keep the text
  }
  return message || `HTTP ${res.statusCode}`;
}
