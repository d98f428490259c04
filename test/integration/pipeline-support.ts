// Helpers for the pipeline integration tests that drive the real `caisson` CLI (dist build)
// as a child process against the real Docker engine. Objects these tests make are named
// caisson-crash-* / caisson-sec-*; host ports 18300–18399. Containers carry the label
// caisson.test=own (overriding the image's caisson.test=1) so that a label-wide cleanup by
// another suite does not remove them mid-test; every test removes what it made by name.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';

import { CLI, REPO_ROOT as ROOT, runCli } from '../support/cli.js';
import { httpGet } from '../support/http.js';

export { CLI, ROOT };
export { ensureBuilt, runCli, type CliResult } from '../support/cli.js';
export { httpGet } from '../support/http.js';
export const OWN_LABEL = 'caisson.test=own';

export { buildTestImage, imageExists, imageId } from '../support/images.js';
import { removeTestImages } from '../support/images.js';

export function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export function dockerQuiet(...args: string[]): number {
  return spawnSync('docker', args, { stdio: 'ignore' }).status ?? -1;
}

/** What a CLI run needs: a catalog, a state dir and a trusted-keys folder. */
export interface CliFixture {
  servicesPath: string;
  stateDir: string;
  keysDir: string;
}

export function commonArgs(f: CliFixture): string[] {
  return ['--services', f.servicesPath, '--state-dir', f.stateDir, '--trusted-keys', f.keysDir];
}

/** The version a service answers on /version once /health is 200 (polls up to waitMs), or '' when it never does. */
export async function healthyVersion(port: number, waitMs = 15_000): Promise<string> {
  const until = Date.now() + waitMs;
  for (;;) {
    const h = await httpGet(`http://127.0.0.1:${port}/health`);
    if (h.status === 200) {
      const v = await httpGet(`http://127.0.0.1:${port}/version`);
      if (v.status === 200) return v.body.trim();
    }
    if (Date.now() > until) return '';
    await sleep(150);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Wait until `cond` holds (polling), or throw after waitMs with `what`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, waitMs = 30_000, everyMs = 50): Promise<void> {
  const until = Date.now() + waitMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`gave up waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Container names (exact) that exist, running or not. */
export function containersNamed(...names: string[]): string[] {
  return names.filter((n) => dockerQuiet('container', 'inspect', n) === 0);
}

export function removeContainers(...names: string[]): void {
  const present = containersNamed(...names);
  if (present.length) spawnSync('docker', ['rm', '-f', '-v', ...present], { stdio: 'ignore' });
}

/** Remove image references and the images behind them that nothing else tags (support/images.ts). */
export function removeImages(...refs: string[]): void {
  removeTestImages(refs);
}

export function containerInfo(name: string): { id: string; image: string; running: boolean } | undefined {
  if (dockerQuiet('container', 'inspect', name) !== 0) return undefined;
  const [id, image, running] = docker('inspect', '-f', '{{.Id}} {{.Config.Image}} {{.State.Running}}', name).split(' ');
  return { id: id!, image: image!, running: running === 'true' };
}

/** Build a package with the CLI (vendor side). */
export async function buildPackage(opts: {
  image: string;
  service: string;
  revision: string;
  version: string;
  out: string;
  sign?: string;
}): Promise<string> {
  mkdirSync(dirname(opts.out), { recursive: true });
  rmSync(opts.out, { force: true });
  const args = ['package', 'build', '--image', opts.image, '--service', opts.service, '--service-revision', opts.revision,
    '--platform', 'linux/amd64', '--version', opts.version, '-o', opts.out];
  if (opts.sign) args.push('--sign', opts.sign);
  const r = await runCli(args);
  if (r.code !== 0) throw new Error(`package build failed: ${r.stderr}${r.stdout}`);
  return opts.out;
}

/** Every history record of a state dir (most recent first), with kind and state. */
export async function history(f: CliFixture): Promise<any[]> {
  const r = await runCli(['history', 'list', '--json', '--limit', '100', ...commonArgs(f)]);
  if (r.code !== 0 || !Array.isArray(r.json)) throw new Error(`history list failed: ${r.stderr}${r.stdout}`);
  return r.json;
}

/** Names left under <stateDir>/staging. */
export function stagingLeft(stateDir: string): string[] {
  const dir = join(stateDir, 'staging');
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Every regular file under dir (recursively), for leak checks. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

export function fileContains(path: string, needle: string): boolean {
  return readFileSync(path).includes(Buffer.from(needle, 'utf8'));
}

export function writeText(path: string, text: string): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  return path;
}

/**
 * Under `work`: a catalog of one docker-mode service (services.toml), a state dir that does
 * not exist yet, and the trusted-keys folder (`keysDir`, an empty `no-keys` by default).
 */
export function dockerServiceFixture(work: string, service: DockerServiceOptions, keysDir = join(work, 'no-keys')): CliFixture {
  mkdirSync(keysDir, { recursive: true });
  return {
    servicesPath: writeText(join(work, 'services.toml'), 'catalog_version = 1\n\n' + dockerServiceToml(service)),
    stateDir: join(work, 'state'),
    keysDir,
  };
}

type DockerServiceOptions = {
  name: string;
  revision: string;
  container: string;
  image: string;
  port: number;
  stableSecs?: number;
  timeoutSecs?: number;
  /** stop_timeout_secs (unset: the container's own); 0 for test images, whose httpd ignores SIGTERM as PID 1. */
  stopTimeoutSecs?: number;
};

/** `stop_timeout_secs = N` when a timeout is given, else nothing. */
function stopTimeoutLine(secs: number | undefined): string {
  return secs === undefined ? '' : `stop_timeout_secs = ${secs}\n`;
}

/** A catalog with one docker-mode service and fast health checks. */
export function dockerServiceToml(o: DockerServiceOptions): string {
  return `[[services]]
name = "${o.name}"
service_revision = "${o.revision}"
platform = "linux/amd64"
runtime_mode = "docker"

[services.docker]
container_name = "${o.container}"
image_reference = "${o.image}"
${stopTimeoutLine(o.stopTimeoutSecs)}
[services.health_check]
kind = "http"
url = "http://127.0.0.1:${o.port}/health"
timeout_secs = ${o.timeoutSecs ?? 10}
poll_interval_secs = 0.2
stable_secs = ${o.stableSecs ?? 1}

[services.rollback]
automatic = true
`;
}

export function composeServiceToml(o: {
  name: string;
  revision: string;
  project: string;
  file: string;
  service: string;
  port: number;
  stableSecs?: number;
  timeoutSecs?: number;
  /** stop_timeout_secs: `up --timeout` when the service is recreated (unset: the file's stop_grace_period). */
  stopTimeoutSecs?: number;
}): string {
  return `[[services]]
name = "${o.name}"
service_revision = "${o.revision}"
platform = "linux/amd64"
runtime_mode = "compose"

[services.compose]
project = "${o.project}"
file = "${o.file}"
service = "${o.service}"
${stopTimeoutLine(o.stopTimeoutSecs)}
[services.health_check]
kind = "http"
url = "http://127.0.0.1:${o.port}/health"
timeout_secs = ${o.timeoutSecs ?? 10}
poll_interval_secs = 0.2
stable_secs = ${o.stableSecs ?? 1}

[services.rollback]
automatic = true
`;
}

/** Start a docker-mode service container the way an operator would (restart policy "no"). */
export function runServiceContainer(o: { name: string; image: string; port: number; env?: string[]; network?: string; stopTimeoutSecs?: number }): string {
  const args = ['run', '-d', '--name', o.name, '--label', OWN_LABEL, '--stop-timeout', String(o.stopTimeoutSecs ?? 1), '-p', `127.0.0.1:${o.port}:8080`];
  if (o.network) args.push('--network', o.network);
  for (const e of o.env ?? []) args.push('-e', e);
  args.push(o.image);
  return docker(...args);
}

export function compose(project: string, file: string, ...args: string[]): void {
  execFileSync('docker-compose', ['-p', project, '-f', file, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** IDs of the (non one-off) containers of one compose service. */
export function composeContainers(project: string, service: string): string[] {
  return docker('ps', '-aq', '--no-trunc', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`)
    .split('\n')
    .filter(Boolean);
}

/** The journal state of the most recent update record, read straight from the database (fast polling). */
export function latestUpdateState(stateDir: string): string | undefined {
  const path = join(stateDir, 'caisson.db');
  if (!existsSync(path)) return undefined;
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const row = db.prepare(`SELECT state FROM updates WHERE kind = 'update' ORDER BY started_at DESC, rowid DESC LIMIT 1`).get() as { state: string } | undefined;
    return row?.state;
  } catch {
    return undefined;
  } finally {
    db?.close();
  }
}
