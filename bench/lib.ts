// Helpers for the benchmark (bench/run.ts): child processes with timing and peak RSS, a
// 20 Hz HTTP prober on loopback, image building, and small statistics.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const BENCH_LABEL = 'caisson.bench=1';

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time in ms. */
  ms: number;
  /** Peak RSS in KiB when run under /usr/bin/time. */
  maxRssKb?: number;
}

/** Run a command without blocking the event loop (the prober keeps ticking). */
export function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; rss?: boolean } = {}): Promise<Run> {
  const argv = opts.rss ? ['-f', '\n@@maxrss_kb=%M', cmd, ...args] : args;
  const bin = opts.rss ? '/usr/bin/time' : cmd;
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(bin, argv, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - start;
      let maxRssKb: number | undefined;
      const m = /\n?@@maxrss_kb=(\d+)\s*$/.exec(stderr);
      if (m) {
        maxRssKb = Number(m[1]);
        stderr = stderr.slice(0, m.index);
      }
      resolve({ code, stdout, stderr, ms, maxRssKb });
    });
    // a child that exits before reading its (empty) stdin must not crash the run with EPIPE
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Run and throw on a non-zero exit. */
export async function must(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<Run> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim().slice(-2000)}`);
  return r;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One GET; true on a 2xx answer within timeoutMs. */
export function httpOk(url: string, timeoutMs = 250): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean) => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        resolve(ok);
      }
    };
    const req = http.get(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      finish((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300);
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish(false);
    }, timeoutMs);
    req.on('error', () => finish(false));
  });
}

export interface Sample {
  t: number; // epoch ms
  ok: boolean;
}

/**
 * Probe a loopback URL at 20 Hz until stop() (or maxMs, whichever first). A probe still
 * pending at the next tick makes that tick wait (never more than one request in flight).
 */
export class Prober {
  readonly samples: Sample[] = [];
  private stopped = false;
  private loop: Promise<void>;

  constructor(readonly url: string, readonly hz = 20, maxMs = 15 * 60_000) {
    if (!/^http:\/\/127\.0\.0\.1:\d+\//.test(url)) throw new Error(`the prober only probes loopback: ${url}`);
    const period = 1000 / hz;
    const until = Date.now() + maxMs;
    this.loop = (async () => {
      let next = Date.now();
      while (!this.stopped && Date.now() < until) {
        const t = Date.now();
        const ok = await httpOk(url, Math.min(250, period * 5));
        this.samples.push({ t, ok });
        next += period;
        const wait = next - Date.now();
        if (wait > 0) await sleep(wait);
        else next = Date.now();
      }
    })();
  }

  /** Epoch ms of the first answered probe sent at or after t0, waiting for it (throws after timeoutMs). */
  async firstOkSince(t0: number, timeoutMs = 30_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.samples.find((s) => s.ok && s.t >= t0);
      if (hit) return hit.t;
      if (this.stopped || Date.now() > deadline) throw new Error(`${this.url} did not answer within ${timeoutMs} ms`);
      await sleep(10);
    }
  }

  async stop(): Promise<Sample[]> {
    this.stopped = true;
    await this.loop;
    return this.samples;
  }
}

export interface Outage {
  /** Last answer before the outage, first answer after it (epoch ms). */
  lastOk: number;
  firstOkAfter: number;
  /** firstOkAfter - lastOk: an upper bound of the outage, resolution one probe period. */
  ms: number;
}

/** Every stretch of failed probes between two answers (or from one answer to the end). */
export function outages(samples: Sample[]): Outage[] {
  const out: Outage[] = [];
  let lastOk: number | undefined;
  let inGap = false;
  for (const s of samples) {
    if (s.ok) {
      if (inGap && lastOk !== undefined) out.push({ lastOk, firstOkAfter: s.t, ms: s.t - lastOk });
      inGap = false;
      lastOk = s.t;
    } else if (lastOk !== undefined) {
      inGap = true;
    }
  }
  if (inGap && lastOk !== undefined) out.push({ lastOk, firstOkAfter: NaN, ms: Infinity });
  return out;
}

export function longest(o: Outage[]): Outage | undefined {
  return o.reduce<Outage | undefined>((a, b) => (!a || b.ms > a.ms ? b : a), undefined);
}

/** Poll until the URL answers (interval ms), or throw after timeoutMs. Returns epoch ms of the first answer. */
export async function waitAnswer(url: string, timeoutMs = 30_000, intervalMs = 20): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const t = Date.now();
    if (await httpOk(url, 250)) return t;
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

/** The bench's health check, done the way a person would: poll until OK, then stay OK for stableMs. */
export async function waitHealthyLikeAPerson(url: string, pollMs: number, stableMs: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let since: number | undefined;
  for (;;) {
    const ok = await httpOk(url, 1000);
    const now = Date.now();
    if (ok) {
      since ??= now;
      if (now - since >= stableMs) return;
    } else {
      if (since !== undefined) throw new Error(`${url} failed again after answering`);
    }
    if (now > deadline) throw new Error(`${url} not healthy within ${timeoutMs} ms`);
    await sleep(since !== undefined ? Math.min(pollMs, Math.max(1, stableMs - (now - since))) : pollMs);
  }
}

export type ImageKind = 'healthy' | 'broken';

/**
 * A web image FROM scratch: busybox httpd on :8080 serving /health and /version, plus a
 * padding file of random bytes (incompressible). PID 1 is a shell that exits on SIGTERM
 * (as a well-behaved service does), so a graceful `docker stop` takes milliseconds.
 * broken: exits 1 at once, so it never passes a health check.
 */
export async function buildImage(ref: string, version: string, paddingBytes: number, kind: ImageKind = 'healthy', workDir = '/var/tmp'): Promise<void> {
  const ctx = mkdtempSync(join(workDir, 'caisson-bench-ctx-'));
  try {
    const root = join(ctx, 'rootfs');
    for (const d of ['bin', 'www', 'tmp', 'data']) mkdirSync(join(root, d), { recursive: true });
    copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
    chmodSync(join(root, 'bin', 'busybox'), 0o755);
    writeFileSync(join(root, 'www', 'version'), `${version}\n`);
    writeFileSync(join(root, 'www', 'health'), 'ok\n');
    if (paddingBytes > 0) {
      // random data so that no compression anywhere can make a big package cheap
      await must('sh', ['-c', `head -c ${paddingBytes} /dev/urandom > "$1"`, 'sh', join(root, 'padding.bin')]);
    }
    const cmd =
      kind === 'broken'
        ? ['/bin/busybox', 'sh', '-c', 'echo broken on purpose; exit 1']
        : ['/bin/busybox', 'sh', '-c', "trap 'exit 0' TERM; /bin/busybox httpd -f -p 8080 -h /www & wait"];
    writeFileSync(join(ctx, 'Dockerfile'), ['FROM scratch', 'COPY rootfs /', 'ENV PATH=/bin', 'EXPOSE 8080', `CMD ${JSON.stringify(cmd)}`, ''].join('\n'));
    await must('docker', ['build', '-q', '--label', BENCH_LABEL, '-t', ref, ctx]);
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const MB = 1_000_000;
export const MiB = 1024 * 1024;

/** A signed difference: `+ 51 ms`, `− 239 ms`. */
export function fmtDelta(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '+ -';
  return `${ms < 0 ? '−' : '+'} ${fmtMs(Math.abs(ms))}`;
}

export function fmtMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-';
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

export function fmtRate(bytes: number, ms: number): string {
  const r = bytes / (ms / 1000);
  return r >= 1e9 ? `${(r / 1e9).toFixed(2)} GB/s` : `${(r / 1e6).toFixed(0)} MB/s`;
}

export function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '-';
  return `${(a / b).toFixed(2)}×`;
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}
