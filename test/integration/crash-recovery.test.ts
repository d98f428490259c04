// Fault injection against the real CLI and engine: `caisson package load` SIGKILLs itself right
// after the journal saved a given state (CAISSON_FAULT_KILL_AFTER, agent/pipeline/fault.ts);
// then `caisson recover` must leave the service on the old or the new version, healthy, with
// one container, one closed history record and no staging left.
//
// Every crash point of both modes is a unit test on the fake engine
// (test/unit/pipeline/crash-points.test.ts). Here one point per kind of real driver step
// proves that the real drivers, engine and kill fit what those tests assume: the import (tags
// put back), a switch cut short once the new container exists, a rollback cut short, and a
// commit to finish, in docker mode; the override written and `up` cut short, a rollback's
// `up` cut short, and a commit, in compose mode. (A switch cut short before the new container
// exists, "switching.park_old", is the same reversal on fewer objects: unit test only.)
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testPort } from '../support/ports.js';
import {
  buildPackage,
  buildTestImage,
  commonArgs,
  compose,
  composeContainers,
  composeServiceToml,
  containerInfo,
  containersNamed,
  docker,
  dockerServiceToml,
  ensureBuilt,
  healthyVersion,
  history,
  imageExists,
  removeContainers,
  removeImages,
  runCli,
  runServiceContainer,
  stagingLeft,
  writeText,
} from './pipeline-support.js';

const REPO = 'caisson-crash/web';
const OLD = `${REPO}:1.0.0`;
const NEW = `${REPO}:1.1.0`;
const BROKEN = `${REPO}:1.2.0`;
const CONTAINER = 'caisson-crash-web';
const PARKED = `${CONTAINER}.caisson-prev`;
const DOCKER_PORT = testPort(18301);
const PROJECT = 'caisson-crash-stack';
const COMPOSE_PORT = testPort(18302);

type Mode = 'docker' | 'compose';
type Expect = 'untouched' | 'rolled_back' | 'committed';

interface FaultCase {
  mode: Mode;
  point: string;
  /** Which package: the good 1.1.0, or 1.2.0 whose container exits at once (to reach the rollback states). */
  pkg: 'good' | 'broken';
  expect: Expect;
  /** The error code the closed record must carry. */
  code?: string;
}

const CASES: FaultCase[] = [
  // docker mode
  { mode: 'docker', point: 'loading_image', pkg: 'good', expect: 'untouched', code: 'update.interrupted' },
  { mode: 'docker', point: 'switching.start_new', pkg: 'good', expect: 'rolled_back', code: 'update.interrupted' },
  { mode: 'docker', point: 'committing.remove_old', pkg: 'good', expect: 'committed' },
  { mode: 'docker', point: 'rolling_back.unpark_old', pkg: 'broken', expect: 'rolled_back', code: 'service.start_failed' },
  // compose mode
  { mode: 'compose', point: 'switching.compose_up', pkg: 'good', expect: 'rolled_back', code: 'update.interrupted' },
  { mode: 'compose', point: 'committing', pkg: 'good', expect: 'committed' },
  { mode: 'compose', point: 'rolling_back.compose_up', pkg: 'broken', expect: 'rolled_back', code: 'service.start_failed' },
];

describe('crash recovery (fault injection through the CLI, real engine)', function () {
  this.timeout(600_000);
  let work: string;
  let stateDir: string;
  let keysDir: string;
  let composeFile: string;
  const services: Record<Mode, string> = { docker: '', compose: '' };
  const pkgs = { good: '', broken: '' };
  const ports: Record<Mode, number> = { docker: DOCKER_PORT, compose: COMPOSE_PORT };
  const f = (mode: Mode) => ({ servicesPath: services[mode], stateDir, keysDir });

  before(async function () {
    this.timeout(300_000);
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'caisson-crash-'));
    stateDir = join(work, 'state');
    keysDir = join(work, 'no-keys');
    mkdirSync(keysDir);
    buildTestImage({ ref: OLD, version: '1.0.0' });
    buildTestImage({ ref: NEW, version: '1.1.0' });
    buildTestImage({ ref: BROKEN, version: '1.2.0', behaviour: 'exit' });
    composeFile = writeText(
      join(work, 'compose', 'docker-compose.yml'),
      `version: "2.4"\nservices:\n  web:\n    image: ${OLD}\n    stop_grace_period: 1s\n    labels:\n      caisson.test: own\n    ports:\n      - "127.0.0.1:${COMPOSE_PORT}:8080"\n`,
    );
    services.docker = writeText(
      join(work, 'docker-services.toml'),
      'catalog_version = 1\n\n' + dockerServiceToml({ name: 'web', revision: 'web-v1', container: CONTAINER, image: OLD, port: DOCKER_PORT }),
    );
    services.compose = writeText(
      join(work, 'compose-services.toml'),
      'catalog_version = 1\n\n' + composeServiceToml({ name: 'web', revision: 'web-v1', project: PROJECT, file: composeFile, service: 'web', port: COMPOSE_PORT }),
    );
    pkgs.good = await buildPackage({ image: NEW, service: 'web', revision: 'web-v1', version: '1.1.0', out: join(work, 'pkg', 'web-1.1.0.edgepkg') });
    pkgs.broken = await buildPackage({ image: BROKEN, service: 'web', revision: 'web-v1', version: '1.2.0', out: join(work, 'pkg', 'web-1.2.0.edgepkg') });
    // a device has the packages, not their images
    removeImages(NEW, BROKEN);
  });

  after(() => {
    removeContainers(CONTAINER, PARKED);
    try {
      if (composeFile) compose(PROJECT, composeFile, 'down', '--remove-orphans');
    } catch {
      // nothing to take down
    }
    removeImages(NEW, BROKEN, OLD);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /**
   * Fresh state dir; the service runs 1.0.0 in a fresh container and answers; the package
   * images are absent. (The compose project, once up, stays up beside docker mode: its own
   * names and port.)
   */
  async function reset(mode: Mode): Promise<void> {
    rmSync(stateDir, { recursive: true, force: true });
    removeContainers(CONTAINER, PARKED);
    // without Caisson's override, from the developer's file alone: 1.0.0 again
    if (mode === 'compose') compose(PROJECT, composeFile, 'up', '-d', '--force-recreate', '--remove-orphans');
    removeImages(NEW, BROKEN);
    if (mode === 'docker') runServiceContainer({ name: CONTAINER, image: OLD, port: DOCKER_PORT });
    expect(await healthyVersion(ports[mode])).to.equal('1.0.0');
  }

  /** The service's containers: docker mode by name (plus the parked name), compose by labels. */
  function serviceContainers(mode: Mode): string[] {
    return mode === 'docker' ? containersNamed(CONTAINER, PARKED) : composeContainers(PROJECT, 'web');
  }

  for (const c of CASES) {
    it(`${c.mode} mode: killed after "${c.point}" → ${c.expect}`, async () => {
      await reset(c.mode);
      const before = c.mode === 'docker' ? containerInfo(CONTAINER)!.id : composeContainers(PROJECT, 'web')[0]!;
      const pkg = pkgs[c.pkg];

      const load = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f(c.mode)), pkg], {
        env: { CAISSON_FAULT_KILL_AFTER: c.point },
      });
      expect(load.signal, `load should have been killed at ${c.point}; exit ${load.code}: ${load.stderr}`).to.equal('SIGKILL');

      const open = (await history(f(c.mode))).filter((r) => r.kind === 'update');
      expect(open).to.have.length(1);
      if (!c.point.startsWith('closed:')) expect(open[0].outcome).to.equal('open');

      const rec = await runCli(['recover', '--json', ...commonArgs(f(c.mode))]);
      expect(rec.code, rec.stderr + rec.stdout).to.equal(0);
      expect(rec.json?.recovered).to.be.an('array');

      // the service answers, on the old or the new version as the point says
      const version = await healthyVersion(ports[c.mode]);
      expect(version, 'the service must answer its health endpoint').to.equal(c.expect === 'committed' ? '1.1.0' : '1.0.0');

      // exactly one container for the service, and nothing parked once the record is closed
      const containers = serviceContainers(c.mode);
      expect(containers, `containers: ${containers.join(', ')}`).to.have.length(1);
      if (c.mode === 'docker') {
        expect(containersNamed(PARKED)).to.deep.equal([]);
        const now = containerInfo(CONTAINER)!;
        expect(now.running).to.equal(true);
        if (c.expect !== 'committed') expect(now.id, 'the old container itself serves again').to.equal(before);
        else expect(now.image).to.equal(NEW);
      }

      // one closed record with the expected outcome
      const records = (await history(f(c.mode))).filter((r) => r.kind === 'update');
      expect(records).to.have.length(1);
      const r = records[0];
      const outcome = c.expect === 'untouched' ? 'rejected' : c.expect;
      expect(r.outcome, JSON.stringify(r)).to.equal(outcome);
      if (c.code) expect(r.error?.code).to.equal(c.code);
      else expect(r.error).to.equal(undefined);
      if (!c.point.startsWith('closed:')) {
        expect(rec.json.recovered.map((x: any) => x.update_id)).to.deep.equal([r.update_id]);
      } else {
        expect(rec.json.recovered).to.deep.equal([]);
      }

      // staging cleared; the new tag exists only after a commit (tags restored otherwise)
      expect(stagingLeft(stateDir)).to.deep.equal([]);
      const tagged = c.pkg === 'good' ? NEW : BROKEN;
      expect(imageExists(tagged), `${tagged} tag after ${outcome}`).to.equal(c.expect === 'committed');

      // a second recover has nothing left to do
      const again = await runCli(['recover', '--json', ...commonArgs(f(c.mode))]);
      expect(again.code).to.equal(0);
      expect(again.json.recovered).to.deep.equal([]);
    });
  }

  it('a `package load` after a crash recovers first, then applies the package', async () => {
    await reset('docker');
    const before = containerInfo(CONTAINER)!.id;
    const killed = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f('docker')), pkgs.good], {
      env: { CAISSON_FAULT_KILL_AFTER: 'switching.create_new' },
    });
    expect(killed.signal).to.equal('SIGKILL');
    // the old container is parked and stopped right now: the service is down until recovery
    expect(containerInfo(PARKED)?.id).to.equal(before);

    const load = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f('docker')), pkgs.good]);
    expect(load.code, load.stderr).to.equal(0);
    expect(load.json.outcome).to.equal('committed');
    expect(load.stderr).to.match(/recovered interrupted update u-\S+: rolled_back/);
    expect(await healthyVersion(DOCKER_PORT)).to.equal('1.1.0');

    const records = (await history(f('docker'))).filter((r) => r.kind === 'update');
    expect(records.map((r) => r.outcome)).to.deep.equal(['committed', 'rolled_back']);
    expect(records[1].error.code).to.equal('update.interrupted');
    expect(containersNamed(CONTAINER, PARKED)).to.deep.equal([CONTAINER]);
    expect(stagingLeft(stateDir)).to.deep.equal([]);
    expect(docker('inspect', '-f', '{{.Config.Image}}', CONTAINER)).to.equal(NEW);
  });
});
