// Stick I/O with a deadline. Each job runs in its own short-lived child process
// (stick-child.ts); the agent waits for the answer at most `timeoutMs` and then kills the
// child and forgets it. A read or fsync on a stick that stopped answering can sleep in
// the kernel for good, and neither the main thread nor libuv's small thread pool (which
// the inbox, the pipeline and a clean exit need) may be the one sleeping.
import { fork } from 'node:child_process';
import { extname, join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export type StickJob =
  | { op: 'list'; mountpoint: string; suffix: string }
  | {
      op: 'deliver';
      mountpoint: string;
      reportsDir: string;
      resultFile: string;
      resultText: string;
      reports: { base: string; json: string; txt: string }[];
    };

export type StickAnswer = { ok: true; names: string[] } | { ok: false; error: string; code?: string };

export const DEFAULT_STICK_TIMEOUT_MS = 60_000;

/** The stick did not answer in time; its child was killed. */
export class StickTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
}

/** The job failed on the stick (the child's own error, e.g. EROFS, ENOSPC, a refused link). */
export class StickIoError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

// stick-child.ts under tsx, stick-child.js once built
const here = fileURLToPath(import.meta.url);
const CHILD = join(dirname(here), `stick-child${extname(here)}`);
const FROM_SOURCE = extname(here) === '.ts';

/**
 * The child module and the node options it starts with. From source, every child would
 * load tsx again (~0.4 s each); the test suite compiles the child once to plain
 * JavaScript and names it in CAISSON_STICK_CHILD (docs/testing.md), honoured only when
 * running from source, so the built agent always starts its own stick-child.js.
 */
function childModule(): { path: string; execArgv?: string[] } {
  const compiled = FROM_SOURCE ? process.env.CAISSON_STICK_CHILD : undefined;
  return compiled ? { path: compiled, execArgv: [] } : { path: CHILD };
}

/**
 * Run one job on a stick; resolves with the names it reports, rejects on failure, on
 * timeout and when `signal` aborts (the agent stops: its exit must not wait for a stick).
 */
export function runStickJob(job: StickJob, timeoutMs = DEFAULT_STICK_TIMEOUT_MS, signal?: AbortSignal): Promise<string[]> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new StickIoError('stopped before the stick was read'));
      return;
    }
    const { path, execArgv } = childModule();
    const child = fork(path, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json', execArgv });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString('utf8');
    });
    let settled = false;
    const finish = (err: Error | undefined, names?: string[]) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        // a child asleep in the kernel dies when the stick lets go of it; never wait for that
        child.kill('SIGKILL');
        child.unref();
        child.channel?.unref();
        child.stderr?.destroy();
        reject(err);
      } else resolve(names!);
    };
    const timer = setTimeout(
      () => finish(new StickTimeoutError(`the stick did not answer within ${Math.round(timeoutMs / 1000)} s (${job.op})`)),
      timeoutMs,
    );
    const onAbort = () => finish(new StickIoError('stopped while the stick was in use'));
    signal?.addEventListener('abort', onAbort, { once: true });
    child.once('message', (answer: StickAnswer) => {
      if (answer.ok) finish(undefined, answer.names);
      else finish(new StickIoError(answer.error, answer.code));
    });
    child.once('error', (err) => finish(err));
    // 'close', not 'exit': by then every message the child sent has arrived
    child.once('close', (code, signal) =>
      finish(new StickIoError(`the stick process ended without an answer (${signal ?? `exit ${code}`}) ${stderr.trim()}`.trim())),
    );
    child.send(job);
  });
}
