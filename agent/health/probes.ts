// One health probe = one attempt: it resolves with { ok, detail } and never throws for a
// failing service (only for a configuration that can never pass, e.g. container_health on
// an image without HEALTHCHECK, which throws config.invalid).
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type Docker from 'dockerode';
import type { HealthCheckSpec } from '../config/services.js';
import { CaissonError, describe } from '../errors.js';

export interface ProbeResult {
  ok: boolean;
  /** Why it failed (or what it saw), for messages and logs. */
  detail: string;
}

export type ContainerInfo = Docker.ContainerInspectInfo;

/** What a health check reads from the engine (runtime/engine.ts provides it). */
export interface ContainerReader {
  /** The container as the engine sees it now; undefined when it does not exist. Throws docker.unreachable or docker.error. */
  container(id: string): Promise<ContainerInfo | undefined>;
  /** Run a command inside the container to its end: its exit code and the start of its output. */
  exec(id: string, command: string[]): Promise<{ exitCode: number | undefined; output: string }>;
}

export interface ProbeContext {
  engine: ContainerReader;
  containerId: string;
  /** The container as inspected right before this probe. */
  container: ContainerInfo;
  /** Upper bound for this attempt. */
  timeoutMs: number;
}

export async function runProbe(spec: HealthCheckSpec, ctx: ProbeContext): Promise<ProbeResult> {
  switch (spec.kind) {
    case 'running':
      return probeRunning(ctx.container);
    case 'container_health':
      return probeContainerHealth(ctx.container);
    case 'http':
      if (!spec.url) throw new CaissonError('config.invalid', 'health_check kind "http" needs url');
      return probeHttp(spec.url, spec.expect_status, ctx.timeoutMs);
    case 'tcp':
      if (!spec.port) throw new CaissonError('config.invalid', 'health_check kind "tcp" needs port');
      return probeTcp(spec.host ?? '127.0.0.1', spec.port, ctx.timeoutMs);
    case 'exec':
      if (!spec.command?.length) throw new CaissonError('config.invalid', 'health_check kind "exec" needs command');
      return probeExec(ctx.engine, ctx.containerId, spec.command, ctx.timeoutMs);
  }
}

export function probeRunning(c: ContainerInfo): ProbeResult {
  if (c.State.Running && !c.State.Restarting) return { ok: true, detail: 'running' };
  return { ok: false, detail: `container is ${c.State.Status}${c.State.Status === 'exited' ? ` (exit code ${c.State.ExitCode})` : ''}` };
}

/** Passes when Docker reports the image's HEALTHCHECK as healthy. */
export function probeContainerHealth(c: ContainerInfo): ProbeResult {
  const test = c.Config.Healthcheck?.Test;
  const health = (c.State as { Health?: { Status?: string; Log?: Array<{ ExitCode?: number; Output?: string }> } }).Health;
  if (!health && (!test || test.length === 0 || test[0] === 'NONE')) {
    throw new CaissonError(
      'config.invalid',
      `health_check kind "container_health" needs an image (or container) HEALTHCHECK, and ${c.Config.Image} has none`,
      { next: 'Use another health_check kind in services.toml (http, tcp, exec, running), or ship an image with a HEALTHCHECK.' },
    );
  }
  const running = probeRunning(c);
  if (!running.ok) return running;
  const status = health?.Status ?? 'starting';
  if (status === 'healthy') return { ok: true, detail: 'HEALTHCHECK healthy' };
  const last = health?.Log?.[health.Log.length - 1];
  const out = last ? `; last check exit ${last.ExitCode}: ${oneLine(last.Output ?? '')}` : '';
  return { ok: false, detail: `HEALTHCHECK ${status}${out}` };
}

export function probeHttp(url: string, expectStatus: number | undefined, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const lib = url.startsWith('https:') ? https : http;
    let done = false;
    const finish = (r: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = lib.get(url, { agent: false, headers: { 'user-agent': 'caisson-health', connection: 'close' } }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      const ok = expectStatus !== undefined ? status === expectStatus : status >= 200 && status < 300;
      finish({ ok, detail: `GET ${url} answered ${status}${ok ? '' : expectStatus !== undefined ? ` (expected ${expectStatus})` : ' (expected 2xx)'}` });
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`no answer within ${Math.round(timeoutMs / 100) / 10} s`));
    }, timeoutMs);
    req.on('error', (err) => finish({ ok: false, detail: `GET ${url} failed: ${describeNet(err)}` }));
  });
}

export function probeTcp(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let done = false;
    const finish = (r: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, detail: `connect to ${host}:${port} timed out` }), timeoutMs);
    socket.once('connect', () => finish({ ok: true, detail: `connected to ${host}:${port}` }));
    socket.once('error', (err) => finish({ ok: false, detail: `connect to ${host}:${port} failed: ${describeNet(err)}` }));
  });
}

/** `docker exec` of the command inside the container; passes on exit code 0. */
export async function probeExec(engine: ContainerReader, containerId: string, command: string[], timeoutMs: number): Promise<ProbeResult> {
  const label = JSON.stringify(command);
  const work = engine.exec(containerId, command).then(
    ({ exitCode, output }): ProbeResult =>
      exitCode === 0
        ? { ok: true, detail: `${label} exited 0` }
        : { ok: false, detail: `${label} exited ${exitCode ?? '?'}${output.trim() ? `: ${oneLine(output)}` : ''}` },
    (err: unknown): ProbeResult => ({ ok: false, detail: `exec ${label} failed: ${engineText(err)}` }),
  );
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<ProbeResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: `exec ${label} did not finish within ${Math.round(timeoutMs / 1000)} s` }), timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function engineText(err: unknown): string {
  const json = (err as { json?: { message?: string } } | null)?.json;
  return json?.message ?? describe(err);
}

function describeNet(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? `${code}` + (describe(err).includes(code) ? '' : ` (${describe(err)})`) : describe(err);
}

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > 200 ? `${t.slice(0, 200)}…` : t;
}
