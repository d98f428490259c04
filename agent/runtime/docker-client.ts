// A thin layer over dockerode on the engine's unix socket. Everything that can fail maps to a
// CaissonError: connection problems to docker.unreachable, the rest to docker.error unless a
// caller asks for a more precise code.
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import http from 'node:http';
import type Docker from 'dockerode';
import { Dockerode } from './dockerode.js';
import { CaissonError, describe, isDockerUnreachable, toCaissonError, type ErrorCode } from '../errors.js';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

export type { Docker };

/**
 * The engine socket to use when none is configured: CAISSON_DOCKER_SOCKET, else Docker's own
 * DOCKER_HOST (unix:// only; Caisson talks to a local engine), else /var/run/docker.sock.
 */
export function defaultDockerSocket(env: NodeJS.ProcessEnv = process.env): string {
  const own = env.CAISSON_DOCKER_SOCKET;
  if (own) return own;
  const host = env.DOCKER_HOST;
  if (host) {
    const m = /^unix:\/\/(\/.*)$/.exec(host);
    if (!m) {
      throw new CaissonError('config.invalid', `DOCKER_HOST is "${host.slice(0, 120)}"; Caisson talks to a local engine only (unix:///path/to/docker.sock)`, {
        next: 'Set DOCKER_HOST to the engine\'s unix socket, or unset it and set CAISSON_DOCKER_SOCKET (or docker_socket in agent.toml).',
      });
    }
    return m[1]!;
  }
  return DEFAULT_DOCKER_SOCKET;
}

/** A client for the engine on `socketPath` (default: defaultDockerSocket()). */
export function connectDocker(socketPath?: string): Docker {
  return new Dockerode({ socketPath: socketPath ?? defaultDockerSocket() });
}

/** The unix socket a client talks to (for tools such as docker-compose that need DOCKER_HOST). */
export function socketPathOf(docker: Docker): string | undefined {
  const p = (docker.modem as unknown as { socketPath?: unknown }).socketPath;
  return typeof p === 'string' ? p : undefined;
}

/** HTTP status of a dockerode error, if it has one. */
export function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** The engine's own message for a dockerode error ("No such container: …"), else the error text. */
export function engineMessage(err: unknown): string {
  const json = (err as { json?: unknown } | null)?.json;
  if (json && typeof json === 'object' && typeof (json as { message?: unknown }).message === 'string') {
    return (json as { message: string }).message;
  }
  if (typeof json === 'string' && json.trim()) return json.trim();
  return describe(err);
}

/** Map a dockerode failure to a CaissonError with context ("what we were doing: why"). */
export function dockerError(err: unknown, doing: string, fallback: ErrorCode = 'docker.error'): CaissonError {
  if (err instanceof CaissonError) return err;
  if (isDockerUnreachable(err)) return toCaissonError(err);
  return new CaissonError(fallback, `${doing}: ${engineMessage(err)}`, { cause: err });
}

/**
 * Ping the engine, retrying until it answers or waitMs has passed (the engine may still be
 * starting when the agent boots). Throws docker.unreachable.
 */
export async function pingDocker(docker: Docker, opts: { waitMs?: number; intervalMs?: number } = {}): Promise<void> {
  const waitMs = opts.waitMs ?? 0;
  const interval = opts.intervalMs ?? 500;
  const deadline = Date.now() + waitMs;
  let lastErr: unknown;
  for (;;) {
    try {
      await docker.ping();
      return;
    } catch (err) {
      lastErr = err;
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    await sleep(Math.min(interval, left));
  }
  throw new CaissonError('docker.unreachable', `the Docker engine does not answer (${describe(lastErr)})`, { cause: lastErr });
}

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
  let response: NodeJS.ReadableStream;
  const socketPath = socketPathOf(docker);
  if (socketPath) {
    response = await postImageArchive(socketPath, path, total, opts);
  } else {
    const file = createReadStream(path, { highWaterMark: 1024 * 1024 });
    if (opts.onBytes) {
      let done = 0;
      file.on('data', (chunk) => opts.onBytes!((done += chunk.length), total));
    }
    try {
      response = await docker.loadImage(file, {});
    } catch (err) {
      file.destroy();
      throw dockerError(err, 'the engine refused the image', 'docker.load_failed');
    }
  }
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
      opts.onProgress?.(event);
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
  return { loadedRefs, loadedIds, events };
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
  const req = http.request({
    socketPath,
    method: 'POST',
    // quiet=0: the engine reports how far it has unpacked each layer (the longest part)
    path: '/images/load?quiet=0',
    agent: false,
    headers: { 'Content-Type': 'application/x-tar', 'Transfer-Encoding': 'chunked' },
  });
  let failed: unknown;
  let early = false;
  const answer = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', (err) => {
      failed ??= err;
      reject(err);
    });
  });
  answer.catch(() => undefined); // surfaced below
  // ends the upload early: the connection failed or closed, or the engine already said no
  const interrupted = new Promise<never>((_resolve, reject) => {
    req.once('error', (err) => reject(err));
    req.once('close', () => reject(failed ?? Object.assign(new Error('the engine closed the connection during the upload'), { code: 'ECONNRESET' })));
    req.once('response', (res) => {
      if (res.statusCode === 200) return;
      early = true;
      reject(new Error(`HTTP ${res.statusCode}`));
    });
  });
  interrupted.catch(() => undefined);
  const buffers = Array.from({ length: UPLOAD_BUFFERS }, () => Buffer.allocUnsafeSlow(UPLOAD_CHUNK));
  const sent: Array<Promise<void> | undefined> = buffers.map(() => undefined);
  let pos = 0;
  try {
    for (let i = 0; ; i++) {
      const k = i % buffers.length;
      await Promise.race([sent[k], interrupted]); // the socket is done with this buffer
      let n: number;
      try {
        ({ bytesRead: n } = await fh.read(buffers[k]!, 0, UPLOAD_CHUNK, pos));
      } catch (err) {
        throw new CaissonError('docker.load_failed', `reading ${path} failed at byte ${pos}: ${describe(err)}`, { cause: err });
      }
      if (n === 0) break;
      pos += n;
      const p = new Promise<void>((resolve, reject) => req.write(buffers[k]!.subarray(0, n), (err) => (err ? reject(err) : resolve())));
      p.catch(() => undefined);
      sent[k] = p;
      onBytes?.(pos, total);
    }
    await Promise.race([Promise.all(sent), interrupted]);
    req.end();
    onUploaded?.(); // before the answer, which ends only once the engine unpacked everything
  } catch (err) {
    if (!early) {
      req.destroy();
      if (err instanceof CaissonError) throw err;
      const cause = failed ?? err;
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
    res = await answer;
  } catch (err) {
    throw dockerError(err, 'the engine refused the image', 'docker.load_failed');
  }
  if (res.statusCode !== 200) {
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
    req.destroy();
    throw new CaissonError('docker.load_failed', `the engine refused the image: ${message || `HTTP ${res.statusCode}`}`);
  }
  return res;
}

/** The engine's data root (DockerRootDir), where images and containers live on disk. */
export async function engineDataRoot(docker: Docker): Promise<string | undefined> {
  try {
    const root = ((await docker.info()) as { DockerRootDir?: unknown }).DockerRootDir;
    return typeof root === 'string' && root.startsWith('/') ? root : undefined;
  } catch (err) {
    throw dockerError(err, 'asking the engine for its data root');
  }
}

/** The image ID (sha256:…) a reference resolves to, or undefined when there is none. */
export async function imageIdOf(docker: Docker, ref: string): Promise<string | undefined> {
  try {
    const info = await docker.getImage(ref).inspect();
    return info.Id;
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw dockerError(err, `inspecting image ${ref}`);
  }
}

/** Every tag the engine knows, as reference → image ID. */
export async function snapshotTags(docker: Docker): Promise<Map<string, string>> {
  let images: Docker.ImageInfo[];
  try {
    images = await docker.listImages({ all: false });
  } catch (err) {
    throw dockerError(err, 'listing images');
  }
  const tags = new Map<string, string>();
  for (const image of images) {
    for (const ref of image.RepoTags ?? []) {
      if (ref === '<none>:<none>') continue;
      tags.set(ref, image.Id);
    }
  }
  return tags;
}

export interface TagChanges {
  /** Tags that pointed elsewhere before and were put back. */
  restored: string[];
  /** Tags that did not exist before and were removed. */
  removed: string[];
  /** Tags that existed before and vanished (they cannot be recreated if the image went away). */
  missing: string[];
}

/** Compare two snapshots: tags that moved, tags that are new, tags that vanished. */
export function diffTags(before: Map<string, string>, after: Map<string, string>, allowed: Iterable<string> = []): TagChanges {
  const allow = new Set(allowed);
  const changes: TagChanges = { restored: [], removed: [], missing: [] };
  for (const [ref, id] of after) {
    if (allow.has(ref)) continue;
    const old = before.get(ref);
    if (old === undefined) changes.removed.push(ref);
    else if (old !== id) changes.restored.push(ref);
  }
  for (const ref of before.keys()) {
    if (!allow.has(ref) && !after.has(ref)) changes.missing.push(ref);
  }
  return changes;
}

/**
 * Undo what a load did to the tags, except for the allowed references: put moved tags back
 * on their previous image, remove tags that are new, re-create vanished tags when their
 * image is still there. `after` defaults to a fresh snapshot. Returns what was changed.
 */
export async function restoreTags(
  docker: Docker,
  before: Map<string, string>,
  after?: Map<string, string>,
  allowed: Iterable<string> = [],
): Promise<TagChanges> {
  const now = after ?? (await snapshotTags(docker));
  const changes = diffTags(before, now, allowed);
  for (const ref of [...changes.restored, ...changes.missing]) {
    const id = before.get(ref)!;
    await tagImage(docker, id, ref);
  }
  for (const ref of changes.removed) {
    await untag(docker, ref);
  }
  return changes;
}

/** Point `ref` (repo:tag) at the image `idOrRef`. */
export async function tagImage(docker: Docker, idOrRef: string, ref: string): Promise<void> {
  const { repo, tag } = splitRef(ref);
  try {
    await docker.getImage(idOrRef).tag({ repo, tag });
  } catch (err) {
    throw dockerError(err, `tagging ${idOrRef} as ${ref}`);
  }
}

/** Remove one tag without pruning parents; an image a container still uses keeps existing. */
async function untag(docker: Docker, ref: string): Promise<void> {
  try {
    await docker.getImage(ref).remove({ noprune: true });
  } catch (err) {
    if (statusOf(err) === 404) return;
    if (statusOf(err) === 409) {
      // in use by a container: forcing a *reference* only drops the tag, the image stays
      try {
        await docker.getImage(ref).remove({ force: true, noprune: true });
        return;
      } catch (err2) {
        if (statusOf(err2) === 404) return;
        throw dockerError(err2, `removing tag ${ref}`);
      }
    }
    throw dockerError(err, `removing tag ${ref}`);
  }
}

/** "registry:5000/a/b:tag" → { repo: "registry:5000/a/b", tag: "tag" } (tag defaults to latest). */
export function splitRef(ref: string): { repo: string; tag: string } {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: 'latest' };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
