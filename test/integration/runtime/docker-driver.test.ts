// The docker-mode driver against the real engine: switch + commit, rollback after a failed
// health check, rollback from every partial state, and what a recreated container keeps.
// How a health check judges the new container is test/unit/health/wait.test.ts and
// test/integration/health/wait.test.ts; here it only has to fail once, quickly.
import assert from 'node:assert/strict';
import { connectDocker } from '../../../agent/runtime/docker-client.js';
import { createDockerDriver, PARKED_SUFFIX } from '../../../agent/runtime/docker-driver.js';
import { createDriver } from '../../../agent/runtime/index.js';
import { waitHealthy } from '../../../agent/health/wait.js';
import { CaissonError } from '../../../agent/errors.js';
import type { ServiceSpec } from '../../../agent/config/services.js';
import type { DockerSwitchPlan, ServiceDriver, SwitchPlan } from '../../../agent/runtime/driver.js';
import { OWN_LABEL, buildOwnImage, cleanup, containerNames, deriveImage, docker, imageId, inspectJson, recorder, waitForBody } from './support.js';
import { tmpdir } from 'node:os';
import { createDockerEngine } from '../../../agent/runtime/engine.js';

const P = 'caisson-rt-d-';
const NAME = `${P}web`;
const PARKED = `${NAME}${PARKED_SUFFIX}`;
const NET = `${P}net`;
const NET2 = `${P}net2`;
const VOL = `${P}vol`;
const PORT = 18101;
const URL_VERSION = `http://127.0.0.1:${PORT}/version`;
const IMG1 = `${P}app:1`;
const IMG2 = `${P}app:2`;
const IMG3 = `${P}app:3`;
const IMG_EXIT = `${P}exit:1`;
const IMAGES = [IMG1, IMG2, IMG3, IMG_EXIT];

const service: ServiceSpec = {
  name: 'rt-web',
  service_revision: 'web-v1',
  platform: 'linux/amd64',
  runtime_mode: 'docker',
  docker: { container_name: NAME },
  health_check: { kind: 'http', url: `http://127.0.0.1:${PORT}/health`, timeout_secs: 20, poll_interval_secs: 0.3, stable_secs: 1 },
  rollback: { automatic: true },
};

const api = connectDocker();
/** What health checks read, through the engine port. */
const health = createDockerEngine(api, { stateDir: tmpdir() });

/**
 * The service as an operator ran it. Its PID 1 (busybox httpd) ignores SIGTERM, so a stop
 * lasts the whole stop timeout: 0 unless a test is about the timeout.
 */
function startService(image = IMG1, stopTimeoutSecs = 0): void {
  cleanup({ containerPrefix: NAME });
  docker(
    'run', '-d', '--pull', 'never', '--name', NAME,
    '--hostname', 'webhost',
    '--network', NET, '--network-alias', 'webalias',
    '-p', `127.0.0.1:${PORT}:8080`,
    '-e', 'USERVAR=kept',
    '-v', `${VOL}:/data`,
    '-v', '/anon',
    '--tmpfs', '/scratch:size=1m',
    '--restart', 'unless-stopped',
    '--stop-timeout', String(stopTimeoutSecs),
    '--label', 'app.owner=ops',
    ...OWN_LABEL,
    '--log-opt', 'max-size=1m',
    '--cap-drop', 'MKNOD',
    '--memory', '64m',
    image,
  );
  docker('network', 'connect', '--alias', 'web2', NET2, NAME);
}

/** What must survive a recreate: everything but the image, the ID and the run state. */
function comparable(i: Record<string, any>, anonVolumes: Set<string>) {
  const config = { ...i.Config };
  delete config.Image;
  const shortId = String(i.Id).slice(0, 12);
  const aliases = Object.fromEntries(
    Object.entries(i.NetworkSettings.Networks as Record<string, any>).map(([k, v]) => [k, ((v.Aliases ?? []) as string[]).filter((a) => a !== shortId)]),
  );
  const host = { ...i.HostConfig };
  // the old container's anonymous volumes are mounted by name into the new one (that is the point)
  host.Mounts = ((host.Mounts ?? []) as Array<{ Source?: string }>).filter((m) => !anonVolumes.has(m.Source ?? ''));
  if (!host.Mounts.length) delete host.Mounts;
  const mounts = [...(i.Mounts as Array<Record<string, unknown>>)]
    .map((m) => ({ Type: m.Type, Name: m.Name, Destination: m.Destination, RW: m.RW }))
    .sort((a, b) => String(a.Destination).localeCompare(String(b.Destination)));
  return { Name: i.Name, Config: config, HostConfig: host, aliases, mounts };
}

function anonVolumesOf(i: Record<string, any>): Set<string> {
  return new Set(
    (i.Mounts as Array<{ Type: string; Name?: string; Destination: string }>).filter((m) => m.Type === 'volume' && m.Destination === '/anon').map((m) => m.Name!),
  );
}

async function expectServing(version: string): Promise<void> {
  assert.equal(await waitForBody(URL_VERSION), version);
}

function expectOldBack(plan: SwitchPlan): void {
  assert.deepEqual(containerNames(NAME), [NAME]);
  const now = inspectJson(NAME);
  assert.equal(now.Id, plan.previous.containerId);
  assert.equal(now.State.Running, true);
}

describe('runtime/docker-driver (real engine)', function () {
  this.timeout(180_000);
  let driver: ServiceDriver;

  before(function () {
    cleanup({ containerPrefix: P, images: IMAGES, networks: [NET, NET2], volumes: [VOL] });
    buildOwnImage({ ref: IMG1, version: '1' });
    buildOwnImage({ ref: IMG2, version: '2' });
    // an image whose own defaults changed: they must not be overridden by the old image's
    deriveImage(IMG2, IMG3, ['ENV MODE=three', 'LABEL app.version=3', 'WORKDIR /www']);
    buildOwnImage({ ref: IMG_EXIT, version: 'x', behaviour: 'exit' });
    docker('network', 'create', NET);
    docker('network', 'create', NET2);
    docker('volume', 'create', VOL);
    driver = createDockerDriver(service, { docker: api });
  });

  after(function () {
    cleanup({ containerPrefix: P, images: IMAGES, networks: [NET, NET2], volumes: [VOL] });
  });

  it('plan() fails with service.not_found when there is no container', async function () {
    cleanup({ containerPrefix: NAME });
    const err = await driver.plan(IMG2).catch((e: unknown) => e);
    assert.ok(err instanceof CaissonError);
    assert.equal((err as CaissonError).code, 'service.not_found');
    assert.equal((await driver.inspect()).status, 'missing');
  });

  it('switches to the new image keeping the whole configuration, then commits', async function () {
    startService();
    docker('exec', NAME, 'sh', '-c', 'echo marker > /data/marker && echo anon > /anon/marker');
    await expectServing('1');
    const before = inspectJson(NAME);
    const anon = anonVolumesOf(before);
    assert.equal(anon.size, 1);

    const plan = await driver.plan(IMG2);
    const { containerId, containerName, imageRef, imageId: previousImageId, wasRunning } = plan.previous;
    assert.deepEqual({ containerId, containerName, imageRef, imageId: previousImageId, wasRunning }, { containerId: before.Id, containerName: NAME, imageRef: IMG1, imageId: imageId(IMG1), wasRunning: true });
    const rec = recorder();
    const newId = await driver.switchTo(plan, rec.checkpoint);
    assert.deepEqual(rec.steps, ['stop_old', 'park_old', 'create_new', 'start_new']);
    assert.equal(await driver.currentContainerId(plan), newId);
    await waitHealthy(health, newId, service.health_check);
    await expectServing('2');
    // the old container is kept, stopped, under the parked name until commit
    assert.deepEqual(containerNames(NAME), [NAME, PARKED]);
    assert.equal(inspectJson(PARKED).Id, before.Id);

    const after = inspectJson(NAME);
    assert.equal(after.Id, newId);
    assert.equal(after.Image, imageId(IMG2));
    assert.equal(after.Config.Image, IMG2);
    assert.deepEqual(comparable(after, anon), comparable(before, anon));
    assert.deepEqual(anonVolumesOf(after), anon);
    assert.equal(docker('exec', NAME, 'cat', '/data/marker'), 'marker');
    assert.equal(docker('exec', NAME, 'cat', '/anon/marker'), 'anon');

    await driver.commit(plan, recorder().checkpoint);
    await driver.commit(plan, recorder().checkpoint); // idempotent
    assert.deepEqual(containerNames(NAME), [NAME]);
    // the volumes stay
    assert.equal(docker('volume', 'inspect', '-f', '{{.Name}}', [...anon][0]!), [...anon][0]);
    const state = await driver.inspect();
    assert.deepEqual(
      { containerId: state.containerId, containerName: state.containerName, imageRef: state.imageRef, running: state.running, status: state.status },
      { containerId: newId, containerName: NAME, imageRef: IMG2, running: true, status: 'running' },
    );
  });

  it('lets the new image\'s own defaults win, but keeps the container\'s overrides', async function () {
    startService(IMG2);
    const plan = await driver.plan(IMG3);
    const newId = await driver.switchTo(plan, recorder().checkpoint);
    const after = inspectJson(newId);
    assert.ok(after.Config.Env.includes('MODE=three'));
    assert.ok(after.Config.Env.includes('USERVAR=kept'));
    assert.equal(after.Config.Labels['app.version'], '3');
    assert.equal(after.Config.Labels['app.owner'], 'ops');
    assert.equal(after.Config.WorkingDir, '/www');
    await driver.commit(plan, recorder().checkpoint);
  });

  it('rolls back after the new version exits at once: old container back under its name, serving, data intact', async function () {
    startService();
    docker('exec', NAME, 'sh', '-c', 'echo before-rollback > /data/marker');
    await expectServing('1');
    const plan = await driver.plan(IMG_EXIT);
    const newId = await driver.switchTo(plan, recorder().checkpoint);
    // restart policy unless-stopped: the engine keeps restarting it, so this runs into the timeout
    const err = await waitHealthy(health, newId, { ...service.health_check, timeout_secs: 1 }).catch((e: unknown) => e);
    assert.equal((err as CaissonError).code, 'health.timeout');
    const rec = recorder();
    const back = await driver.rollback(plan, rec.checkpoint);
    assert.equal(back, plan.previous.containerId);
    assert.deepEqual(rec.steps, ['remove_new', 'unpark_old', 'start_old']);
    expectOldBack(plan);
    await expectServing('1');
    assert.equal(docker('exec', NAME, 'cat', '/data/marker'), 'before-rollback');
    // commit after a rollback must not touch the restored container
    await driver.commit(plan, recorder().checkpoint);
    expectOldBack(plan);
  });

  it('parks the old container with restart policy "no" and gives its policy back on rollback', async function () {
    startService();
    docker('update', '--restart', 'always', NAME);
    await expectServing('1');
    const plan = await driver.plan(IMG2);
    await driver.switchTo(plan, recorder().checkpoint);
    // parked: a daemon restart or reboot must not bring it back beside the new container
    const parked = inspectJson(plan.previous.containerId);
    assert.equal(parked.Name, `/${NAME}.caisson-prev`);
    assert.equal(parked.HostConfig.RestartPolicy.Name, 'no');
    assert.equal(inspectJson(NAME).HostConfig.RestartPolicy.Name, 'always', 'the new container keeps the policy');
    await driver.rollback(plan, recorder().checkpoint);
    await driver.rollback(plan, recorder().checkpoint); // idempotent after a whole switch
    expectOldBack(plan);
    assert.equal(inspectJson(NAME).HostConfig.RestartPolicy.Name, 'always');
    await expectServing('1');
  });

  // a crash before "create_new" leaves the old container stopped and parked, nothing under the
  // name; after a whole switch ("none") is the restart-policy test above
  for (const crashAt of ['stop_old', 'park_old', 'create_new', 'start_new']) {
    it(`rolls back (twice) after a crash before "${crashAt}"`, async function () {
      startService();
      await expectServing('1');
      const plan = await driver.plan(IMG2);
      const rec = recorder(crashAt);
      const result = await driver.switchTo(plan, rec.checkpoint).then(
        () => 'switched',
        (e: Error) => e.message,
      );
      assert.equal(result, `simulated crash before ${crashAt}`);
      await driver.rollback(plan, recorder().checkpoint);
      await driver.rollback(plan, recorder().checkpoint);
      expectOldBack(plan);
      await expectServing('1');
    });
  }

  it('finishes a switch that crashed before start when switchTo is called again', async function () {
    startService();
    const plan = await driver.plan(IMG2);
    await driver.switchTo(plan, recorder('start_new').checkpoint).catch(() => undefined);
    const newId = await driver.switchTo(plan, recorder().checkpoint);
    assert.deepEqual(containerNames(NAME), [NAME, PARKED]);
    await waitHealthy(health, newId, service.health_check);
    await expectServing('2');
    await driver.commit(plan, recorder().checkpoint);
    assert.deepEqual(containerNames(NAME), [NAME]);
  });

  it('refuses to plan while a parked container from an earlier update is left over', async function () {
    startService();
    docker('create', '--name', PARKED, ...OWN_LABEL, IMG1);
    const err = await driver.plan(IMG2).catch((e: unknown) => e);
    assert.equal((err as CaissonError).code, 'service.unsupported');
    docker('rm', PARKED);
  });

  it('stops the old container with the catalog\'s stop_timeout_secs, else the container\'s own', async function () {
    // IMG1's PID 1 (busybox httpd) ignores SIGTERM, so a stop always lasts the whole timeout
    startService(IMG1, 30);
    const own = await driver.plan(IMG2);
    assert.equal((own as DockerSwitchPlan).stopTimeoutSecs, 30);
    // through createDriver, as the pipeline does: the catalog's value reaches the engine
    const quick = createDriver({ ...service, docker: { container_name: NAME, stop_timeout_secs: 1 } }, { docker: api, stateDir: '/nonexistent' });
    const plan = await quick.plan(IMG2);
    assert.equal((plan as DockerSwitchPlan).stopTimeoutSecs, 1);
    const started = Date.now();
    await quick.switchTo(plan, recorder().checkpoint);
    assert.ok(Date.now() - started < 10_000, 'a 30 s stop would mean the catalog value was not passed on');
    await quick.rollback(plan, recorder().checkpoint);
    expectOldBack(plan);
  });

  it('starts the old container on rollback even if it was not running: an update never leaves the service stopped', async function () {
    startService();
    docker('stop', NAME);
    const plan = await driver.plan(IMG2);
    assert.equal(plan.previous.wasRunning, false);
    await driver.switchTo(plan, recorder().checkpoint);
    await driver.rollback(plan, recorder().checkpoint);
    assert.deepEqual(containerNames(NAME), [NAME]);
    assert.equal(inspectJson(NAME).Id, plan.previous.containerId);
    assert.equal(inspectJson(NAME).State.Running, true);
  });
});
