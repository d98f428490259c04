// Helpers for the pipeline integration tests that drive the real `caisson` CLI (dist build)
// as a child process against the real Docker engine. Objects these tests make are named
// caisson-crash-* / caisson-sec-*; host ports 18300–18399. Containers carry the label
// caisson.test=own (overriding the image's caisson.test=1) so that a label-wide cleanup by
// another suite does not remove them mid-test; every test removes what it made by name.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type Docker from 'dockerode';
import { connectDocker, statusOf } from '../../agent/runtime/docker-client.js';

import { CLI, REPO_ROOT as ROOT, runCli } from '../support/cli.js';
import { httpGet } from '../support/http.js';

export { CLI, ROOT };
export { ensureBuilt, runCli, type CliResult } from '../support/cli.js';
export { httpGet } from '../support/http.js';
export const OWN_LABEL = 'caisson.test=own';

export { buildTestImage, imageExists, imageId } from '../support/images.js';
import { inspectExisting, removeTestImages } from '../support/images.js';

export function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** `docker ARGS` without blocking the test process: steps that do not depend on each other run side by side. */
export function dockerAsync(...args: string[]): Promise<string> {
  return execAsync('docker', args);
}

/** `docker-compose -p PROJECT -f FILE ARGS`, without blocking (see dockerAsync). */
export function composeAsync(project: string, file: string, ...args: string[]): Promise<string> {
  return execAsync('docker-compose', ['-p', project, '-f', file, ...args]);
}

function execAsync(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout.trim());
    });
  });
}

// What the tests read from the engine, and the containers and tags they reset between tests,
// through the engine's API on its socket: a docker CLI process costs 0.1–0.5 s to start, and
// a test looks at a dozen objects. (The engine is the one DOCKER_HOST / CAISSON_DOCKER_SOCKET
// names, as for the CLI under test.)
let api: Docker | undefined;
function engineApi(): Docker {
  return (api ??= connectDocker());
}

/** `docker inspect` of a container by name or ID; undefined when there is none. */
export async function inspectContainer(nameOrId: string): Promise<Docker.ContainerInspectInfo | undefined> {
  try {
    return await engineApi().getContainer(nameOrId).inspect();
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

/** Container names (exact) that exist, running or not. */
export async function existingContainers(...names: string[]): Promise<string[]> {
  const found = await Promise.all(names.map((n) => inspectContainer(n)));
  return names.filter((_, i) => found[i] !== undefined);
}

/** Remove containers by name (force, with their anonymous volumes); absent ones are fine. */
export async function removeContainersNow(...names: string[]): Promise<void> {
  await Promise.all(
    names.map((n) =>
      engineApi()
        .getContainer(n)
        .remove({ force: true, v: true })
        .catch((err: unknown) => {
          if (statusOf(err) !== 404) throw err;
        }),
    ),
  );
}

/** Names of the containers, running or not, whose name matches `pattern` (the engine's name filter: "^/prefix"). */
export async function containerNamesMatching(pattern: string): Promise<string[]> {
  const list = await engineApi().listContainers({ all: true, filters: { name: [pattern] } });
  return list.flatMap((c) => c.Names.map((n) => n.replace(/^\//, ''))).sort();
}

/** IDs of the (non one-off) containers of one compose service. */
export async function composeContainerIds(project: string, service: string): Promise<string[]> {
  const list = await engineApi().listContainers({
    all: true,
    filters: { label: [`com.docker.compose.project=${project}`, `com.docker.compose.service=${service}`, 'com.docker.compose.oneoff=False'] },
  });
  return list.map((c) => c.Id);
}

/** Does the engine know this image reference? */
export async function hasImage(ref: string): Promise<boolean> {
  try {
    await engineApi().getImage(ref).inspect();
    return true;
  } catch (err) {
    if (statusOf(err) === 404) return false;
    throw err;
  }
}

/**
 * Untag image references (`docker rmi -f REF`: an image nothing else tags goes with its tag),
 * so that the next load imports them afresh, as on a device that has only the package. The
 * test's after() removes what is left with removeImages.
 */
export async function untagImages(...refs: string[]): Promise<void> {
  for (const ref of refs) {
    await engineApi()
      .getImage(ref)
      .remove({ force: true })
      .catch((err: unknown) => {
        if (statusOf(err) !== 404) throw err;
      });
  }
}

/**
 * What removeImages does, through the API: untag every reference, then remove each image
 * behind them (as they are now, and `builtIds`, as the test built them) once nothing tags it.
 */
export async function removeImagesNow(refs: string[], builtIds: string[] = []): Promise<void> {
  const ids = new Set(builtIds);
  for (const ref of refs) {
    const image = await engineApi().getImage(ref).inspect().catch(() => undefined);
    if (image) ids.add(image.Id);
  }
  await untagImages(...refs);
  for (const id of ids) {
    const image = await engineApi().getImage(id).inspect().catch(() => undefined);
    if (image && (image.RepoTags ?? []).length === 0) await engineApi().getImage(id).remove().catch(() => undefined);
  }
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
  if (names.length === 0) return [];
  const found = new Set(inspectExisting(['container', 'inspect', '-f', '{{.Name}}', ...names]).map((n) => n.replace(/^\//, '')));
  return names.filter((n) => found.has(n));
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
export function runServiceContainer(o: { name: string; image: string; port: number; env?: string[] }): string {
  const args = ['run', '-d', '--name', o.name, '--label', OWN_LABEL, '--stop-timeout', '1', '-p', `127.0.0.1:${o.port}:8080`];
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
