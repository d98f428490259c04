// The whole pipeline through the real CLI, against a real engine and real Compose:
// package → validate → import → switch → health → commit, or automatic rollback.
// The pipeline's logic (every outcome, every crash point) is unit-tested on the fake engine
// (test/unit/pipeline/); a version that passes first and then crash-loops is caught by the
// real health check in test/integration/health/wait.test.ts and rolled back by the real
// driver in test/integration/runtime/docker-driver.test.ts. Here: that the real parts fit.
// Objects are named caisson-pl-*, host ports 18000–18019, label caisson.test=1.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTestImage, cleanupTestObjects, docker, dockerOk, imageExists, imageId } from '../support/images.js';
import { httpGet, waitForBody } from '../support/http.js';
import { caisson, ensureBuilt, runCli } from '../support/cli.js';
import { testPort } from '../support/ports.js';

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

  const common = () => ['--services', join(dir, 'services.toml'), '--state-dir', join(dir, 'state'), '--trusted-keys', join(dir, 'keys'), '--json'];
  const load = (pkg: string) => caisson(['package', 'load', '--yes', ...common(), pkg]);

  before(function () {
    ensureBuilt();
    cleanup();
    dir = mkdtempSync(join(tmpdir(), 'caisson-pl-'));
    buildTestImage({ ref: IMAGES.v1, version: '1.0.0' });
    buildTestImage({ ref: IMAGES.v2, version: '2.0.0' });
    buildTestImage({ ref: IMAGES.exit, version: '3.0.0', behaviour: 'exit' });
    buildTestImage({ ref: IMAGES.sidecar, version: 'sidecar' });
    writeServices();
    const build = (image: string, service: string, revision: string, version: string, name: string) => {
      const out = join(dir, `${name}.edgepkg`);
      const r = caisson(['package', 'build', '--image', image, '--service', service, '--service-revision', revision, '--platform', 'linux/amd64', '--version', version, '-o', out]);
      expect(r.code, r.stderr).to.equal(0);
      return out;
    };
    pkgs = {
      v2: build(IMAGES.v2, 'web', 'web-v1', '2.0.0', 'web-2.0.0'),
      exit: build(IMAGES.exit, 'web', 'web-v1', '3.0.0', 'web-3.0.0'),
      bv2: build(IMAGES.v2, 'backend', 'backend-v1', '2.0.0', 'backend-2.0.0'),
      bexit: build(IMAGES.exit, 'backend', 'backend-v1', '3.0.0', 'backend-3.0.0'),
    };
    // a device gets the images only through packages
    for (const ref of [IMAGES.v2, IMAGES.exit]) docker('rmi', ref);
  });

  after(function () {
    cleanup();
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
      expect(r.code, r.stderr).to.equal(0);
      expect(r.json.outcome).to.equal('valid');
      expect(docker('inspect', '-f', '{{.Id}} {{.Image}}', WEB)).to.equal(before);
      expect(imageExists(IMAGES.v2), 'validate must not import').to.equal(false);
      const history = caisson(['history', 'list', ...common()]).json;
      expect(history[0]).to.include({ kind: 'validation', outcome: 'valid', service: 'web' });
    });

    it('commits an update keeping everything of the container but its image', async function () {
      const before = inspect(WEB);
      const r = load(pkgs.v2);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.json).to.include({ outcome: 'committed', service: 'web', to_image: IMAGES.v2, from_image: IMAGES.v1 });
      expect(r.json.update_id).to.be.a('string');
      expect(await waitForBody(`http://127.0.0.1:${WEB_PORT}/version`)).to.equal('2.0.0');
      const after = inspect(WEB);
      expect(comparable(after)).to.deep.equal(comparable(before));
      expect(after.Config.Image).to.equal(IMAGES.v2);
      expect(docker('exec', WEB, '/bin/busybox', 'cat', '/data/marker')).to.equal('keep-me');
      expect(containerNames()).to.deep.equal([WEB]);
      const shown = caisson(['history', 'show', r.json.update_id, ...common()]).json;
      const states = shown.steps.map((s: { state: string }) => s.state);
      expect(states).to.include.members(['received', 'staged', 'validated', 'loading_image', 'image_loaded', 'switching', 'health_checking', 'committing', 'closed:committed']);
      expect(shown.package_id).to.match(/^[0-9a-f]{64}$/);
      const svc = caisson(['service', 'show', 'web', ...common()]).json;
      expect(svc).to.include({ installed_version: '2.0.0', running_image: IMAGES.v2, status: 'running' });
    });

    it('says "already installed" for the same package again and leaves the container alone', function () {
      const id = docker('inspect', '-f', '{{.Id}}', WEB);
      const r = load(pkgs.v2);
      expect(r.code).to.equal(0);
      expect(r.json.outcome).to.equal('already_installed');
      expect(docker('inspect', '-f', '{{.Id}}', WEB)).to.equal(id);
    });

    it('rolls back a new version that exits at once: old container, config and data back, serving', async function () {
      const before = inspect(WEB);
      const r = load(pkgs.exit);
      expect(r.code, r.stderr).to.equal(3);
      expect(r.json.outcome).to.equal('rolled_back');
      // restart policy unless-stopped: the engine keeps restarting it until the health timeout
      expect(r.json.error.code).to.match(/^health\./);
      expect(r.json.error.message).to.be.a('string').and.not.empty;
      const after = inspect(WEB);
      expect(after.Id, 'the very same container is restored').to.equal(before.Id);
      expect(after.Name).to.equal(`/${WEB}`);
      expect(comparable(after)).to.deep.equal(comparable(before));
      expect(await waitForBody(`http://127.0.0.1:${WEB_PORT}/version`)).to.equal('2.0.0');
      expect(docker('exec', WEB, '/bin/busybox', 'cat', '/data/marker')).to.equal('keep-me');
      expect(containerNames()).to.deep.equal([WEB]);
      expect(imageExists(IMAGES.exit), 'the rejected image is removed').to.equal(false);
    });

    it('never writes container environment values into history or logs', function () {
      const state = join(dir, 'state');
      const history = caisson(['history', 'list', '--limit', '100', ...common()]).stdout;
      expect(history).to.not.include('s3cr3t-value');
      for (const f of readdirSync(join(state, 'logs'))) {
        expect(readFileSync(join(state, 'logs', f), 'utf8')).to.not.include('s3cr3t-value');
      }
    });
    it('reports rollback_failed loudly (exit 4) when the previous container cannot be restored', async function () {
      const run = runCli(['package', 'load', '--yes', ...common(), pkgs.exit]);
      // while the new version fails its health window, someone removes the parked old container
      await waitUntil(() => dockerOk('inspect', `${WEB}.caisson-prev`));
      docker('rm', '-f', `${WEB}.caisson-prev`);
      const r = await run;
      expect(r.code, r.stderr).to.equal(4);
      expect(r.json.outcome).to.equal('rollback_failed');
      expect(r.json.error.code).to.equal('rollback.failed');
      expect(r.json.error.message).to.match(/no longer exists/);
      expect(r.stderr).to.match(/ROLLBACK FAILED: web needs a person/);
      const shown = caisson(['history', 'show', r.json.update_id, ...common()]).json;
      expect(shown.outcome).to.equal('rollback_failed');
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
      compose('down', '-v');
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
      expect(r.code, r.stderr).to.equal(0);
      v2Id = imageId(IMAGES.v2);
      expect(r.json).to.include({ outcome: 'committed', service: 'backend', to_image: IMAGES.v2 });
      expect(await waitForBody(`http://127.0.0.1:${BACKEND_PORT}/version`)).to.equal('2.0.0');
      expect(sidecarId()).to.equal(sidecar);
      expect(backendImage()).to.equal(v2Id);
      expect(docker('exec', backendContainer(), '/bin/busybox', 'cat', '/data/marker')).to.equal('compose-marker');
      expect(docker('exec', backendContainer(), '/bin/busybox', 'env')).to.include('MODE=production');
      expect((await httpGet(`http://127.0.0.1:${SIDECAR_PORT}/version`)).body.trim()).to.equal('sidecar');
    });

    it('rolls back a failing version (exits at once); the other service untouched', async function () {
      const sidecar = sidecarId();
      const r = load(pkgs.bexit);
      expect(r.code, r.stderr).to.equal(3);
      expect(r.json.outcome).to.equal('rolled_back');
      expect(await waitForBody(`http://127.0.0.1:${BACKEND_PORT}/version`)).to.equal('2.0.0');
      expect(backendImage()).to.equal(v2Id);
      expect(sidecarId()).to.equal(sidecar);
      expect(docker('exec', backendContainer(), '/bin/busybox', 'cat', '/data/marker')).to.equal('compose-marker');
    });

    it('never edits the developer\'s compose file', function () {
      expect(readFileSync(composeFile, 'utf8')).to.include(`image: ${IMAGES.v1}`);
    });
  });

  function writeServices(composeFile = join(dir, 'unused.compose.yaml')): void {
    writeFileSync(
      join(dir, 'services.toml'),
      `catalog_version = 1

[[services]]
name = "web"
service_revision = "web-v1"
platform = "linux/amd64"
runtime_mode = "docker"
[services.docker]
container_name = "${WEB}"
[services.health_check]
kind = "http"
url = "http://127.0.0.1:${WEB_PORT}/health"
timeout_secs = 6
poll_interval_secs = 0.2
stable_secs = 1

[[services]]
name = "backend"
service_revision = "backend-v1"
platform = "linux/amd64"
runtime_mode = "compose"
[services.compose]
project = "${PROJECT}"
file = "${composeFile}"
service = "backend"
[services.health_check]
kind = "http"
url = "http://127.0.0.1:${BACKEND_PORT}/health"
timeout_secs = 6
poll_interval_secs = 0.2
stable_secs = 1
`,
    );
  }
});

function cleanup(): void {
  cleanupTestObjects(Object.values(IMAGES), 'caisson-pl-');
  for (const args of [['network', 'rm', 'caisson-pl-net'], ['volume', 'rm', '-f', 'caisson-pl-data'], ['volume', 'rm', '-f', `${PROJECT}_backend-data`]]) {
    dockerOk(...args);
  }
}

async function waitUntil(cond: () => boolean, waitMs = 30_000): Promise<void> {
  const until = Date.now() + waitMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function containerNames(): string[] {
  return docker('ps', '-a', '--format', '{{.Names}}', '--filter', 'name=^/caisson-pl-web').split('\n').filter(Boolean);
}

function inspect(name: string): any {
  return JSON.parse(docker('inspect', name))[0];
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
