// A thin layer over dockerode on the engine's unix socket: the socket, the connection, the
// error mapping. Everything that can fail maps to a CaissonError: connection problems to
// docker.unreachable, the rest to docker.error unless a caller asks for a more precise code.
// Loading images is image-load.ts; tags are image-tags.ts; containers are the drivers'.
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

/** The engine's data root (DockerRootDir), where images and containers live on disk. */
export async function engineDataRoot(docker: Docker): Promise<string | undefined> {
  try {
    const root = ((await docker.info()) as { DockerRootDir?: unknown }).DockerRootDir;
    return typeof root === 'string' && root.startsWith('/') ? root : undefined;
  } catch (err) {
    throw dockerError(err, 'asking the engine for its data root');
  }
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
