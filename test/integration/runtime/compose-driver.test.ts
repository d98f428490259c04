// The compose-mode driver against the real engine and the compose found on this machine
// (Debian's docker-compose 1.29.2 here; `docker compose` v2 is used instead where it exists).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { connectDocker } from '../../../agent/runtime/docker-client.js';
import { imageIdOf } from '../../../agent/runtime/image-tags.js';
import { createComposeDriver, overridePathFor } from '../../../agent/runtime/compose-driver.js';
import { detectComposeCommand } from '../../../agent/runtime/compose-command.js';
import { createDriver } from '../../../agent/runtime/index.js';
import { waitHealthy } from '../../../agent/health/wait.js';
import { CaissonError } from '../../../agent/errors.js';
import type { ServiceSpec } from '../../../agent/config/services.js';
import type { ServiceDriver } from '../../../agent/runtime/driver.js';
import { buildOwnImage, cleanup, deriveImage, docker, imageId, recorder, waitForBody } from './support.js';
import { createDockerEngine } from '../../../agent/runtime/engine.js';
import { testPort } from '../../support/ports.js';

const P = 'caisson-rt-c-';
const PROJECT = 'caisson-rt-cmp';
const IMG1 = `${P}app:1`;
const IMG2 = `${P}app:2`;
const IMG3 = `${P}app:3`;
const IMG_EXIT = `${P}exit:1`;
const IMAGES = [IMG1, IMG2, IMG3, IMG_EXIT, `${P}other:1`];
const FRONT_PORT = testPort(18110);
const BACK_PORT = testPort(18111);
const api = connectDocker();
/** What health checks read, through the engine port. */
const health = createDockerEngine(api, { stateDir: tmpdir() });

describe('runtime/compose-driver (real engine, real compose)', function () {
  this.timeout(240_000);
  let dir: string;
  let stateDir: string;
  let file: string;
  let compose: string[];
  let service: ServiceSpec;
  let driver: ServiceDriver;

  const containerOf = (svc: string): string =>
    docker('ps', '-aq', '--no-trunc', '--filter', `label=com.docker.compose.project=${PROJECT}`, '--filter', `label=com.docker.compose.service=${svc}`);
  const frontVersion = () => waitForBody(`http://127.0.0.1:${FRONT_PORT}/version`);
  const backVersion = () => waitForBody(`http://127.0.0.1:${BACK_PORT}/version`);

  before(async function () {
    cleanup({ containerPrefix: PROJECT, images: IMAGES, networks: [`${PROJECT}_default`], volumes: [`${PROJECT}_data`] });
    buildOwnImage({ ref: IMG1, version: '1' });
    buildOwnImage({ ref: IMG2, version: '2' });
    buildOwnImage({ ref: IMG3, version: '3' });
    buildOwnImage({ ref: IMG_EXIT, version: 'x', behaviour: 'exit' });
    dir = mkdtempSync(join(tmpdir(), 'caisson-rt-compose-'));
    stateDir = join(dir, 'state');
    file = join(dir, 'stack.compose.yaml');
    writeFileSync(
      file,
      [
        'version: "3.8"',
        'services:',
        '  front:',
        `    image: ${IMG1}`,
        `    ports: ["127.0.0.1:${FRONT_PORT}:8080"]`,
        '    environment: { ROLE: front }',
        '    labels: { caisson.test: rt }',
        '    volumes: ["data:/data"]',
        // the image's PID 1 ignores SIGTERM: a stop lasts the whole grace period
        '    stop_grace_period: 0s',
        '  back:',
        `    image: ${IMG1}`,
        `    ports: ["127.0.0.1:${BACK_PORT}:8080"]`,
        '    labels: { caisson.test: rt }',
        '    stop_grace_period: 0s',
        'volumes:',
        '  data: {}',
        '',
      ].join('\n'),
    );
    compose = await detectComposeCommand('auto');
    service = {
      name: 'rt-front',
      service_revision: 'front-v1',
      platform: 'linux/amd64',
      runtime_mode: 'compose',
      compose: { project: PROJECT, file, service: 'front' },
      health_check: { kind: 'http', url: `http://127.0.0.1:${FRONT_PORT}/health`, timeout_secs: 20, poll_interval_secs: 0.3, stable_secs: 1 },
      rollback: { automatic: true },
    };
    driver = createDriver(service, { docker: api, stateDir, composeCommand: 'auto' });
  });

  after(function () {
    if (compose) {
      try {
        execFileSync(compose[0]!, [...compose.slice(1), '-p', PROJECT, '-f', file, 'down', '-v'], { stdio: 'ignore' });
      } catch {
        // fall through to the name-based cleanup
      }
    }
    cleanup({ containerPrefix: PROJECT, images: IMAGES, networks: [`${PROJECT}_default`], volumes: [`${PROJECT}_data`] });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('detects a working compose command', async function () {
    assert.ok([['docker', 'compose'], ['docker-compose']].some((c) => JSON.stringify(c) === JSON.stringify(compose)), String(compose));
    const err = await detectComposeCommand('docker compose', { ...process.env, PATH: '/nonexistent' }).catch((e: unknown) => e);
    assert.equal((err as CaissonError).code, 'compose.unavailable');
  });

  describe('on a fresh project', function () {
    beforeEach(function () {
      // started the developer's way, without any Caisson override
      rmSync(stateDir, { recursive: true, force: true });
      execFileSync(compose[0]!, [...compose.slice(1), '-p', PROJECT, '-f', file, 'up', '-d', '--force-recreate'], { stdio: 'ignore' });
    });

    it('switches one service through an override file, leaves the other service\'s container alone, and commits', async function () {
      assert.equal(await frontVersion(), '1');
      const backBefore = containerOf('back');
      const frontBefore = containerOf('front');
      docker('exec', frontBefore, 'sh', '-c', 'echo kept > /data/marker');
      const composeText = readFileSync(file, 'utf8');

      const plan = await driver.plan(IMG2);
      const { containerId, imageRef, imageId: previousImageId, wasRunning } = plan.previous;
      assert.deepEqual({ containerId, imageRef, imageId: previousImageId, wasRunning }, { containerId: frontBefore, imageRef: IMG1, imageId: imageId(IMG1), wasRunning: true });
      assert.equal((plan.mode === 'compose' && plan.previousOverride), null);
      const rec = recorder();
      const newId = await driver.switchTo(plan, rec.checkpoint);
      assert.deepEqual(rec.steps, ['write_override', 'compose_up']);
      await waitHealthy(health, newId, service.health_check);
      assert.equal(await frontVersion(), '2');
      assert.equal(containerOf('front'), newId);
      assert.notEqual(newId, frontBefore);
      assert.equal(containerOf('back'), backBefore);
      assert.equal(await backVersion(), '1');
      assert.equal(docker('exec', newId, 'cat', '/data/marker'), 'kept');
      assert.ok((docker('inspect', '-f', '{{range .Config.Env}}{{println .}}{{end}}', newId)).includes('ROLE=front'));
      // the developer's file is untouched; Caisson's override names the new image by its
      // reference (quoted), so people reading `docker ps` see the version, not an image ID
      assert.equal(readFileSync(file, 'utf8'), composeText);
      const override = readFileSync(overridePathFor(stateDir, service.name), 'utf8');
      assert.ok(override.includes(`image: "${IMG2}"`));
      assert.ok(!override.includes('sha256:'));
      assert.ok(override.includes('version: "3.8"'));
      assert.equal(docker('ps', '--no-trunc', '--filter', `id=${newId}`, '--format', '{{.Image}}'), IMG2);
      assert.equal(docker('inspect', '-f', '{{.Image}}', newId), imageId(IMG2));

      await driver.commit(plan, recorder().checkpoint);
      assert.equal(await driver.currentContainerId(plan), newId);
      assert.equal((await driver.inspect()).imageRef, IMG2);
    });

    it('rolls back a failed switch: previous config back, the other service untouched', async function () {
      const backBefore = containerOf('back');
      const plan = await driver.plan(IMG_EXIT);
      const newId = await driver.switchTo(plan, recorder().checkpoint);
      const err = await waitHealthy(health, newId, { ...service.health_check, timeout_secs: 1 }).catch((e: unknown) => e);
      assert.ok(err instanceof CaissonError);
      assert.ok((['service.start_failed', 'health.timeout']).includes((err as CaissonError).code));
      const rec = recorder();
      const back = await driver.rollback(plan, rec.checkpoint);
      assert.deepEqual(rec.steps, ['restore_override', 'compose_up']);
      assert.equal(existsSync(overridePathFor(stateDir, service.name)), false);
      assert.equal(containerOf('front'), back);
      assert.equal(docker('inspect', '-f', '{{.Image}}', back), imageId(IMG1));
      assert.equal(await frontVersion(), '1');
      assert.equal(containerOf('back'), backBefore);
      // idempotent
      await driver.rollback(plan, recorder().checkpoint);
      assert.equal(await frontVersion(), '1');
      assert.equal(containerOf('back'), backBefore);
    });

    it('rolls back to the previous override and re-tags the previous image when a load moved its tag', async function () {
      // first update, committed: the service now runs through Caisson's override (IMG2)
      const first = await driver.plan(IMG2);
      await waitHealthy(health, await driver.switchTo(first, recorder().checkpoint), service.health_check);
      await driver.commit(first, recorder().checkpoint);
      const overridePath = overridePathFor(stateDir, service.name);
      const firstOverride = readFileSync(overridePath, 'utf8');
      const backBefore = containerOf('back');

      const second = await driver.plan(IMG3);
      assert.equal(second.previous.imageRef, IMG2);
      assert.equal((second.mode === 'compose' && second.previousOverride), firstOverride);
      const img2Id = imageId(IMG2);
      // a package load moved the IMG2 tag to another image
      const movedId = deriveImage(IMG2, IMG2, ['LABEL moved=1']);
      assert.notEqual(movedId, img2Id);
      await driver.switchTo(second, recorder().checkpoint);
      assert.equal(await frontVersion(), '3');

      const rec = recorder();
      await driver.rollback(second, rec.checkpoint);
      assert.deepEqual(rec.steps, ['restore_override', 'retag_previous', 'compose_up']);
      assert.equal(readFileSync(overridePath, 'utf8'), firstOverride);
      assert.equal(await imageIdOf(api, IMG2), img2Id);
      assert.equal(docker('inspect', '-f', '{{.Image}}', containerOf('front')), img2Id);
      assert.equal(await frontVersion(), '2');
      assert.equal(containerOf('back'), backBefore);
      docker('rmi', movedId);
    });
  });

  it('plan() fails with service.not_found for a service without a container', async function () {
    const other = createComposeDriver(
      { ...service, name: 'rt-missing', compose: { project: PROJECT, file, service: 'nope' } },
      { docker: api, stateDir },
    );
    const err = await other.plan(IMG2).catch((e: unknown) => e);
    assert.equal((err as CaissonError).code, 'service.not_found');
  });

  it('recreates with the catalog\'s stop_timeout_secs (up --timeout), not the file\'s stop_grace_period', async function () {
    // its own project: a 60 s grace period, and an image whose PID 1 ignores SIGTERM
    const project = `${PROJECT}-stop`;
    const slowFile = join(dir, 'slow.compose.yaml');
    writeFileSync(
      slowFile,
      ['version: "3.8"', 'services:', '  slow:', `    image: ${IMG1}`, '    labels: { caisson.test: rt }', '    stop_grace_period: 60s', ''].join('\n'),
    );
    const run = (...args: string[]) => execFileSync(compose[0]!, [...compose.slice(1), '-p', project, '-f', slowFile, ...args], { stdio: 'ignore' });
    try {
      run('up', '-d');
      const quick = createDriver(
        { ...service, name: 'rt-slow', compose: { project, file: slowFile, service: 'slow', stop_timeout_secs: 1 } },
        { docker: api, stateDir, composeCommand: 'auto' },
      );
      const plan = await quick.plan(IMG2);
      const started = Date.now();
      await quick.switchTo(plan, recorder().checkpoint);
      assert.ok(Date.now() - started < 30_000, 'a 60 s stop would mean --timeout was not passed');
    } finally {
      run('down', '-v', '-t', '0');
      cleanup({ containerPrefix: `${project}_` });
    }
  });
});
