// Fault injection against the real CLI and engine: `caisson package load` SIGKILLs itself right
// after the journal saved a given state (CAISSON_FAULT_KILL_AFTER, agent/pipeline/fault.ts);
// then `caisson recover` must leave the service on the old version, healthy, with one
// container, one closed history record and no staging left.
//
// Every crash point of both modes (import, switch, health window, commit, rollback) is a unit
// test on the fake engine (test/unit/pipeline/crash-points.test.ts). Here one point per mode
// proves that a real SIGKILL of the real CLI, the real drivers and a real recovery against
// real containers fit what those tests assume: in docker mode a switch cut short once the new
// container exists (recovery removes it and renames and starts the parked old one); in compose
// mode the override written and `up` cut short (recovery restores the override and recreates
// the service through Compose). And once, that `package load` recovers an interrupted update
// itself before it applies the package. A rollback cut short on the real engine is in
// test/integration/stack.test.ts (a stack's compose member, its docker members reversed by
// the same recovery); an engine that is down at recovery is test/integration/docker-restart.test.ts.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testPort } from '../support/ports.js';
import {
  buildPackage,
  buildTestImage,
  commonArgs,
  compose,
  composeAsync,
  composeContainerIds,
  composeServiceToml,
  dockerAsync,
  dockerServiceToml,
  ensureBuilt,
  existingContainers,
  hasImage,
  healthyVersion,
  history,
  inspectContainer,
  OWN_LABEL,
  removeContainersNow,
  removeImagesNow,
  runCli,
  stagingLeft,
  untagImages,
  writeText,
} from './pipeline-support.js';

const REPO = 'caisson-crash/web';
const OLD = `${REPO}:1.0.0`;
const NEW = `${REPO}:1.1.0`;
const CONTAINER = 'caisson-crash-web';
const PARKED = `${CONTAINER}.caisson-prev`;
const DOCKER_PORT = testPort(18301);
const PROJECT = 'caisson-crash-stack';
const COMPOSE_PORT = testPort(18302);

type Mode = 'docker' | 'compose';

/** Where each mode's update is killed: its switch cut short, so recovery reverses it. */
const KILL_AT: Record<Mode, string> = { docker: 'switching.start_new', compose: 'switching.compose_up' };

describe('crash recovery (fault injection through the CLI, real engine)', function () {
  this.timeout(300_000);
  let work: string;
  let stateDir: string;
  let keysDir: string;
  let composeFile: string;
  let pkg: string;
  /** The IDs of the images built here, removed at the end once nothing tags them. */
  const built: string[] = [];
  const services: Record<Mode, string> = { docker: '', compose: '' };
  const ports: Record<Mode, number> = { docker: DOCKER_PORT, compose: COMPOSE_PORT };
  const f = (mode: Mode) => ({ servicesPath: services[mode], stateDir, keysDir });

  before(async function () {
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'caisson-crash-'));
    stateDir = join(work, 'state');
    keysDir = join(work, 'no-keys');
    mkdirSync(keysDir);
    built.push(buildTestImage({ ref: OLD, version: '1.0.0' }));
    built.push(buildTestImage({ ref: NEW, version: '1.1.0' }));
    // the test images' httpd ignores SIGTERM as PID 1: stops kill at once (grace 0, stop_timeout_secs 0)
    composeFile = writeText(
      join(work, 'compose', 'docker-compose.yml'),
      `version: "2.4"\nservices:\n  web:\n    image: ${OLD}\n    stop_grace_period: 0s\n    labels:\n      caisson.test: own\n    ports:\n      - "127.0.0.1:${COMPOSE_PORT}:8080"\n`,
    );
    const health = { stableSecs: 0.2, timeoutSecs: 10, stopTimeoutSecs: 0 };
    services.docker = writeText(
      join(work, 'docker-services.toml'),
      'catalog_version = 1\n\n' + dockerServiceToml({ name: 'web', revision: 'web-v1', container: CONTAINER, image: OLD, port: DOCKER_PORT, ...health }),
    );
    services.compose = writeText(
      join(work, 'compose-services.toml'),
      'catalog_version = 1\n\n' + composeServiceToml({ name: 'web', revision: 'web-v1', project: PROJECT, file: composeFile, service: 'web', port: COMPOSE_PORT, ...health }),
    );
    pkg = await buildPackage({ image: NEW, service: 'web', revision: 'web-v1', version: '1.1.0', out: join(work, 'pkg', 'web-1.1.0.edgepkg') });
    // a device has the packages, not their images: every reset() untags it
  });

  after(async () => {
    await removeContainersNow(CONTAINER, PARKED);
    try {
      if (composeFile) compose(PROJECT, composeFile, 'down', '--remove-orphans', '--timeout', '0');
    } catch {
      // nothing to take down
    }
    await removeImagesNow([NEW, OLD], built);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /**
   * Fresh state dir; the service runs 1.0.0 in a fresh container and answers; the package
   * image is absent. (The compose project, once up, stays up beside docker mode: its own
   * names and port.)
   */
  async function reset(mode: Mode): Promise<void> {
    rmSync(stateDir, { recursive: true, force: true });
    await removeContainersNow(CONTAINER, PARKED);
    await untagImages(NEW);
    // compose: without Caisson's override, from the developer's file alone: 1.0.0 again
    if (mode === 'compose') await composeAsync(PROJECT, composeFile, 'up', '-d', '--force-recreate', '--remove-orphans');
    else await dockerAsync('run', '-d', '--name', CONTAINER, '--label', OWN_LABEL, '--stop-timeout', '0', '-p', `127.0.0.1:${DOCKER_PORT}:8080`, OLD);
    assert.equal(await healthyVersion(ports[mode]), '1.0.0');
  }

  /** The service's containers: docker mode by name (plus the parked name), compose by labels. */
  function serviceContainers(mode: Mode): Promise<string[]> {
    return mode === 'docker' ? existingContainers(CONTAINER, PARKED) : composeContainerIds(PROJECT, 'web');
  }

  /** The ID of the container serving the service now. */
  async function servingId(mode: Mode): Promise<string> {
    return mode === 'docker' ? (await inspectContainer(CONTAINER))!.Id : (await composeContainerIds(PROJECT, 'web'))[0]!;
  }

  for (const mode of ['docker', 'compose'] as const) {
    it(`${mode} mode: killed after "${KILL_AT[mode]}" → rolled back`, async () => {
      await reset(mode);
      const before = await servingId(mode);

      const load = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f(mode)), pkg], {
        env: { CAISSON_FAULT_KILL_AFTER: KILL_AT[mode] },
      });
      assert.equal(load.signal, 'SIGKILL', `load should have been killed at ${KILL_AT[mode]}; exit ${load.code}: ${load.stderr}`);

      const open = (await history(f(mode))).filter((r) => r.kind === 'update');
      assert.deepEqual(open.map((r) => r.outcome), ['open']);

      const rec = await runCli(['recover', '--json', ...commonArgs(f(mode))]);
      assert.equal(rec.code, 0, rec.stderr + rec.stdout);
      assert.deepEqual(rec.json?.recovered?.map((x: any) => x.update_id), [open[0].update_id]);

      // the service answers its health endpoint on the old version
      assert.equal(await healthyVersion(ports[mode]), '1.0.0', 'the service must answer its health endpoint');

      // exactly one container for the service, and nothing parked once the record is closed
      const containers = await serviceContainers(mode);
      assert.equal(containers.length, 1, `containers: ${containers.join(', ')}`);
      if (mode === 'docker') {
        assert.deepEqual(await existingContainers(PARKED), []);
        const now = (await inspectContainer(CONTAINER))!;
        assert.equal(now.State.Running, true);
        assert.equal(now.Id, before, 'the old container itself serves again');
      }

      // one closed record, rolled back because it was interrupted
      const records = (await history(f(mode))).filter((r) => r.kind === 'update');
      assert.equal(records.length, 1);
      assert.equal(records[0].outcome, 'rolled_back', JSON.stringify(records[0]));
      assert.equal(records[0].error?.code, 'update.interrupted');

      // staging cleared; the new tag removed again (tags restored)
      assert.deepEqual(stagingLeft(stateDir), []);
      assert.equal(await hasImage(NEW), false, `${NEW} tag after rolled_back`);

      // a second recover has nothing left to do
      const again = await runCli(['recover', '--json', ...commonArgs(f(mode))]);
      assert.equal(again.code, 0);
      assert.deepEqual(again.json.recovered, []);
    });
  }

  it('a `package load` after a crash recovers first, then applies the package', async () => {
    await reset('docker');
    const before = await servingId('docker');
    const killed = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f('docker')), pkg], {
      env: { CAISSON_FAULT_KILL_AFTER: 'switching.create_new' },
    });
    assert.equal(killed.signal, 'SIGKILL');
    // the old container is parked and stopped right now: the service is down until recovery
    assert.equal((await inspectContainer(PARKED))?.Id, before);

    const load = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f('docker')), pkg]);
    assert.equal(load.code, 0, load.stderr);
    assert.equal(load.json.outcome, 'committed');
    assert.match(load.stderr, /recovered interrupted update u-\S+: rolled_back/);
    assert.equal(await healthyVersion(DOCKER_PORT), '1.1.0');

    const records = (await history(f('docker'))).filter((r) => r.kind === 'update');
    assert.deepEqual(records.map((r) => r.outcome), ['committed', 'rolled_back']);
    assert.equal(records[1].error.code, 'update.interrupted');
    assert.deepEqual(await existingContainers(CONTAINER, PARKED), [CONTAINER]);
    assert.deepEqual(stagingLeft(stateDir), []);
    assert.equal((await inspectContainer(CONTAINER))!.Config.Image, NEW);
  });
});
