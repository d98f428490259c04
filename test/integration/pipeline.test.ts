// The whole pipeline through the real CLI, against a real engine and real Compose:
// package → validate → import → switch → health → commit, or automatic rollback.
// The pipeline's logic (every outcome, every crash point) is unit-tested on the fake engine
// (test/unit/pipeline/); a version that passes first and then crash-loops is caught by the
// real health check in test/integration/health/wait.test.ts and rolled back by the real
// driver in test/integration/runtime/docker-driver.test.ts. Here: that the real parts fit.
// (The same package again, "already installed", is logic only: test/unit/pipeline/outcomes.test.ts.)
// The test images' httpd ignores SIGTERM as PID 1: the catalog stops at once
// (stop_timeout_secs 0) instead of waiting out a grace period, and the health windows are
// short; the failing versions fail fast (they exit at once; where a restart policy makes the
// engine restart them, the catalog of those tests gives up after 3 s).
// Objects are named caisson-pl-*, host ports 18000–18019, label caisson.test=1.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTestImage, docker, dockerOk, imageId } from '../support/images.js';
import { httpGet, waitForBody } from '../support/http.js';
import { caisson, ensureBuilt, runCli } from '../support/cli.js';
import { testPort } from '../support/ports.js';
import { containerNamesMatching, existingContainers, hasImage, inspectContainer, removeContainersNow, removeImagesNow } from './pipeline-support.js';

const WEB_PORT = testPort(18001);
const BACKEND_PORT = testPort(18002);
const SIDECAR_PORT = testPort(18003);
const WEB = 'caisson-pl-web';
const PROJECT = 'caisson-pl-stack';
const IMAGES = {
  v1: 'caisson-pl/web:1.0.0',
  v2: 'caisson-pl/web:2.0.0',
  exit: 'caisson-pl/web:3.0.0-exits',
  sidecar: 'caisson-pl/sidecar:1.0.0',
};

describe('pipeline through the CLI (real engine)', function () {
  this.timeout(300_000);
  let dir: string;
  let pkgs: Record<'v2' | 'exit' | 'bv2' | 'bexit', string>;
  /** The IDs of the images built here, removed at the end once nothing tags them. */
  const built: string[] = [];

  /** The catalog: `services.toml`, or `fail-fast.toml` (the same, but web gives up its health check after 3 s). */
  type CatalogFile = 'services.toml' | 'fail-fast.toml';
  const common = (catalog: CatalogFile = 'services.toml') => ['--services', join(dir, catalog), '--state-dir', join(dir, 'state'), '--trusted-keys', join(dir, 'keys'), '--json'];
  const load = (pkg: string, catalog?: CatalogFile) => caisson(['package', 'load', '--yes', ...common(catalog), pkg]);

  before(async function () {
    ensureBuilt();
    await cleanup();
    dir = mkdtempSync(join(tmpdir(), 'caisson-pl-'));
    built.push(buildTestImage({ ref: IMAGES.v1, version: '1.0.0' }));
    built.push(buildTestImage({ ref: IMAGES.v2, version: '2.0.0' }));
    built.push(buildTestImage({ ref: IMAGES.exit, version: '3.0.0', behaviour: 'exit' }));
    built.push(buildTestImage({ ref: IMAGES.sidecar, version: 'sidecar' }));
    writeServices();
    const build = async (image: string, service: string, revision: string, version: string, name: string) => {
      const out = join(dir, `${name}.edgepkg`);
      const r = await runCli(['package', 'build', '--image', image, '--service', service, '--service-revision', revision, '--platform', 'linux/amd64', '--version', version, '-o', out]);
      assert.equal(r.code, 0, r.stderr);
      return out;
    };
    // side by side: each is mostly a `docker save` and a hash
    const [v2, exit, bv2, bexit] = await Promise.all([
      build(IMAGES.v2, 'web', 'web-v1', '2.0.0', 'web-2.0.0'),
      build(IMAGES.exit, 'web', 'web-v1', '3.0.0', 'web-3.0.0'),
      build(IMAGES.v2, 'backend', 'backend-v1', '2.0.0', 'backend-2.0.0'),
      build(IMAGES.exit, 'backend', 'backend-v1', '3.0.0', 'backend-3.0.0'),
    ]);
    pkgs = { v2: v2!, exit: exit!, bv2: bv2!, bexit: bexit! };
    // a device gets the images only through packages
    for (const ref of [IMAGES.v2, IMAGES.exit]) docker('rmi', ref);
  });

  after(async function () {
    await cleanup(built);
    rmSync(dir, { recursive: true, force: true });
  });

  describe('docker mode', function () {
    before(function () {
      docker('network', 'create', '--label', 'caisson.test=1', 'caisson-pl-net');
      docker('volume', 'create', '--label', 'caisson.test=1', 'caisson-pl-data');
      docker(
        'run', '-d', '--name', WEB, '--label', 'caisson.test=1', '--label', 'role=frontend',
        '--restart', 'unless-stopped', '-e', 'GREETING=hello', '-e', 'SECRET_TOKEN=s3cr3t-value',
        '-p', `127.0.0.1:${WEB_PORT}:8080`, '-v', 'caisson-pl-data:/data', '--network', 'caisson-pl-net',
        '--network-alias', 'frontend', '--hostname', 'webhost', '--workdir', '/www',
        IMAGES.v1, '/bin/busybox', 'httpd', '-f', '-p', '8080', '-h', '/www',
      );
      docker('exec', WEB, '/bin/busybox', 'sh', '-c', 'echo keep-me > /data/marker');
    });

    it('validates without changing anything and records the validation', async function () {
      const before = docker('inspect', '-f', '{{.Id}} {{.Image}}', WEB);
      const r = caisson(['package', 'validate', ...common(), pkgs.v2]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.json.outcome, 'valid');
      assert.equal(docker('inspect', '-f', '{{.Id}} {{.Image}}', WEB), before);
      assert.equal(await hasImage(IMAGES.v2), false, 'validate must not import');
      const history = caisson(['history', 'list', ...common()]).json;
      assert.deepEqual(pick(history[0], ['kind', 'outcome', 'service']), { kind: 'validation', outcome: 'valid', service: 'web' });
    });

    it('commits an update keeping everything of the container but its image', async function () {
      const before = await inspect(WEB);
      const r = load(pkgs.v2);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(pick(r.json, ['outcome', 'service', 'to_image', 'from_image']), { outcome: 'committed', service: 'web', to_image: IMAGES.v2, from_image: IMAGES.v1 });
      assert.equal(typeof r.json.update_id, 'string');
      assert.equal(await waitForBody(`http://127.0.0.1:${WEB_PORT}/version`), '2.0.0');
      const after = await inspect(WEB);
      assert.deepEqual(comparable(after), comparable(before));
      assert.equal(after.Config.Image, IMAGES.v2);
      assert.equal(docker('exec', WEB, '/bin/busybox', 'cat', '/data/marker'), 'keep-me');
      assert.deepEqual(await webContainers(), [WEB]);
      const shown = caisson(['history', 'show', r.json.update_id, ...common()]).json;
      const states: string[] = shown.steps.map((s: { state: string }) => s.state);
      const expected = ['received', 'staged', 'validated', 'loading_image', 'image_loaded', 'switching', 'health_checking', 'committing', 'closed:committed'];
      assert.deepEqual(expected.filter((s) => !states.includes(s)), [], `steps: ${states.join(', ')}`);
      assert.match(shown.package_id, /^[0-9a-f]{64}$/);
      const svc = caisson(['service', 'show', 'web', ...common()]).json;
      assert.deepEqual(pick(svc, ['installed_version', 'running_image', 'status']), { installed_version: '2.0.0', running_image: IMAGES.v2, status: 'running' });
    });

    it('rolls back a new version that exits at once: old container, config and data back, serving', async function () {
      const before = await inspect(WEB);
      const r = load(pkgs.exit, 'fail-fast.toml');
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.json.outcome, 'rolled_back');
      // restart policy unless-stopped: the engine keeps restarting it until the health timeout
      assert.match(r.json.error.code, /^health\./);
      assert.equal(typeof r.json.error.message, 'string');
      assert.notEqual(r.json.error.message, '');
      const after = await inspect(WEB);
      assert.equal(after.Id, before.Id, 'the very same container is restored');
      assert.equal(after.Name, `/${WEB}`);
      assert.deepEqual(comparable(after), comparable(before));
      assert.equal(await waitForBody(`http://127.0.0.1:${WEB_PORT}/version`), '2.0.0');
      assert.equal(docker('exec', WEB, '/bin/busybox', 'cat', '/data/marker'), 'keep-me');
      assert.deepEqual(await webContainers(), [WEB]);
      assert.equal(await hasImage(IMAGES.exit), false, 'the rejected image is removed');
    });

    it('never writes container environment values into history or logs', function () {
      const state = join(dir, 'state');
      const history = caisson(['history', 'list', '--limit', '100', ...common()]).stdout;
      assert.ok(history.length > 0, 'history lists the updates');
      assert.ok(!history.includes('s3cr3t-value'), 'the secret is not in history');
      const logs = readdirSync(join(state, 'logs'));
      assert.ok(logs.length > 0, 'the updates wrote logs');
      for (const f of logs) assert.ok(!readFileSync(join(state, 'logs', f), 'utf8').includes('s3cr3t-value'), `the secret is not in ${f}`);
    });

    it('reports rollback_failed loudly (exit 4) when the previous container cannot be restored', async function () {
      const run = runCli(['package', 'load', '--yes', ...common('fail-fast.toml'), pkgs.exit]);
      // while the new version fails its health window, someone removes the parked old container
      await waitUntil(async () => (await existingContainers(`${WEB}.caisson-prev`)).length > 0);
      await removeContainersNow(`${WEB}.caisson-prev`);
      const r = await run;
      assert.equal(r.code, 4, r.stderr);
      assert.equal(r.json.outcome, 'rollback_failed');
      assert.equal(r.json.error.code, 'rollback.failed');
      assert.match(r.json.error.message, /no longer exists/);
      assert.match(r.stderr, /ROLLBACK FAILED: web needs a person/);
      const shown = caisson(['history', 'show', r.json.update_id, ...common()]).json;
      assert.equal(shown.outcome, 'rollback_failed');
    });
  });

  describe('compose mode', function () {
    let composeFile: string;
    let v2Id: string;
    const sidecarId = () => docker('ps', '-q', '--no-trunc', '--filter', `label=com.docker.compose.project=${PROJECT}`, '--filter', 'label=com.docker.compose.service=sidecar');
    const backendImage = () => docker('inspect', '-f', '{{.Image}}', backendContainer());

    before(function () {
      composeFile = join(dir, 'stack.compose.yaml');
      writeFileSync(
        composeFile,
        [
          "version: '2.4'",
          'services:',
          '  backend:',
          `    image: ${IMAGES.v1}`,
          '    labels: { caisson.test: "1" }',
          `    ports: ["127.0.0.1:${BACKEND_PORT}:8080"]`,
          '    environment: { MODE: production }',
          '    volumes: ["backend-data:/data"]',
          '  sidecar:',
          `    image: ${IMAGES.sidecar}`,
          '    labels: { caisson.test: "1" }',
          `    ports: ["127.0.0.1:${SIDECAR_PORT}:8080"]`,
          'volumes:',
          '  backend-data: {}',
          '',
        ].join('\n'),
      );
      writeServices(composeFile);
      compose('up', '-d');
      docker('exec', backendContainer(), '/bin/busybox', 'sh', '-c', 'echo compose-marker > /data/marker');
    });

    after(function () {
      compose('down', '-v', '--timeout', '0');
    });

    function compose(...args: string[]): void {
      const cmd = dockerOk('compose', 'version') ? ['docker', 'compose'] : ['docker-compose'];
      execFileSync(cmd[0]!, [...cmd.slice(1), '-p', PROJECT, '-f', composeFile, ...args], { stdio: 'ignore' });
    }

    function backendContainer(): string {
      return docker('ps', '-q', '--filter', `label=com.docker.compose.project=${PROJECT}`, '--filter', 'label=com.docker.compose.service=backend');
    }

    it('commits an update of one service; the other service keeps its container', async function () {
      const sidecar = sidecarId();
      const r = load(pkgs.bv2);
      assert.equal(r.code, 0, r.stderr);
      v2Id = imageId(IMAGES.v2);
      assert.deepEqual(pick(r.json, ['outcome', 'service', 'to_image']), { outcome: 'committed', service: 'backend', to_image: IMAGES.v2 });
      assert.equal(await waitForBody(`http://127.0.0.1:${BACKEND_PORT}/version`), '2.0.0');
      assert.equal(sidecarId(), sidecar);
      assert.equal(backendImage(), v2Id);
      assert.equal(docker('exec', backendContainer(), '/bin/busybox', 'cat', '/data/marker'), 'compose-marker');
      assert.ok(docker('exec', backendContainer(), '/bin/busybox', 'env').split('\n').includes('MODE=production'), 'the environment of the compose file');
      assert.equal((await httpGet(`http://127.0.0.1:${SIDECAR_PORT}/version`)).body.trim(), 'sidecar');
    });

    it('rolls back a failing version (exits at once); the other service untouched', async function () {
      const sidecar = sidecarId();
      const r = load(pkgs.bexit);
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.json.outcome, 'rolled_back');
      assert.equal(await waitForBody(`http://127.0.0.1:${BACKEND_PORT}/version`), '2.0.0');
      assert.equal(backendImage(), v2Id);
      assert.equal(sidecarId(), sidecar);
      assert.equal(docker('exec', backendContainer(), '/bin/busybox', 'cat', '/data/marker'), 'compose-marker');
    });

    it('never edits the developer\'s compose file', function () {
      assert.ok(readFileSync(composeFile, 'utf8').includes(`image: ${IMAGES.v1}`));
    });
  });

  /**
   * The catalogs (services.toml, and fail-fast.toml for the versions that fail under a restart
   * policy): the health windows are short, and every stop kills at once (the test images'
   * httpd ignores SIGTERM, so a grace period would only be waited out).
   */
  function writeServices(composeFile = join(dir, 'unused.compose.yaml')): void {
    const catalog = (webTimeoutSecs: number) => `catalog_version = 1

[[services]]
name = "web"
service_revision = "web-v1"
platform = "linux/amd64"
runtime_mode = "docker"
[services.docker]
container_name = "${WEB}"
stop_timeout_secs = 0
[services.health_check]
kind = "http"
url = "http://127.0.0.1:${WEB_PORT}/health"
timeout_secs = ${webTimeoutSecs}
poll_interval_secs = 0.1
stable_secs = 0.3

[[services]]
name = "backend"
service_revision = "backend-v1"
platform = "linux/amd64"
runtime_mode = "compose"
[services.compose]
project = "${PROJECT}"
file = "${composeFile}"
service = "backend"
stop_timeout_secs = 0
[services.health_check]
kind = "http"
url = "http://127.0.0.1:${BACKEND_PORT}/health"
timeout_secs = 10
poll_interval_secs = 0.1
stable_secs = 0.3
`;
    writeFileSync(join(dir, 'services.toml'), catalog(10));
    writeFileSync(join(dir, 'fail-fast.toml'), catalog(3));
  }
});

/** The named fields of an object (to compare a subset of a JSON answer). */
function pick(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, o?.[k]]));
}

/** Containers named caisson-pl-*, the images, the network and volumes of this file (left by an earlier run, or made here). */
async function cleanup(built: string[] = []): Promise<void> {
  const left = docker('ps', '-aq', '--filter', 'label=caisson.test=1', '--filter', 'name=^/caisson-pl-').split('\n').filter(Boolean);
  await removeContainersNow(...left);
  await removeImagesNow(Object.values(IMAGES), built);
  for (const args of [['network', 'rm', 'caisson-pl-net'], ['volume', 'rm', '-f', 'caisson-pl-data'], ['volume', 'rm', '-f', `${PROJECT}_backend-data`]]) {
    dockerOk(...args);
  }
}

async function waitUntil(cond: () => Promise<boolean>, waitMs = 30_000): Promise<void> {
  const until = Date.now() + waitMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Names of the web service's containers (a parked one included), running or not. */
function webContainers(): Promise<string[]> {
  return containerNamesMatching(`^/${WEB}`);
}

async function inspect(name: string): Promise<any> {
  return inspectContainer(name);
}
/** The parts of `docker inspect` an update must keep: everything but image and run state. */
function comparable(c: any): unknown {
  const { Image: _image, Hostname, ...config } = c.Config;
  void _image;
  const networks = Object.fromEntries(
    Object.entries(c.NetworkSettings.Networks as Record<string, any>).map(([name, n]) => [name, { Aliases: (n.Aliases ?? []).filter((a: string) => !c.Id.startsWith(a)), NetworkID: n.NetworkID }]),
  );
  return {
    Config: { ...config, Hostname },
    HostConfig: c.HostConfig,
    Mounts: c.Mounts,
    Networks: networks,
    Name: c.Name,
    Ports: c.NetworkSettings.Ports,
  };
}
