// The Docker engine stops and comes back in the middle of an update. This test STOPS AND
// RESTARTS THE ENGINE: run it alone (CI runs it serially), never beside other Docker tests.
//
// The engine is restarted the way it was started: through CAISSON_ENGINE_CONTROL when
// scripts/with-engine.sh runs it (a docker-in-docker engine: restarting it touches nothing
// else, so `CAISSON_ENGINE_RESTARTABLE=1 scripts/with-engine.sh docker28 -- npx mocha
// THIS_FILE` is safe beside other work), else the dockerd of scripts/ensure-docker.sh (pid file), else systemd's docker unit,
// else the running dockerd with its own command line.
import { expect } from 'chai';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildPackage,
  buildTestImage,
  commonArgs,
  containerInfo,
  containersNamed,
  dockerServiceFixture,
  ensureBuilt,
  healthyVersion,
  history,
  imageExists,
  latestUpdateState,
  removeContainers,
  removeImages,
  ROOT,
  runCli,
  runServiceContainer,
  stagingLeft,
  waitFor,
  type CliFixture,
} from './pipeline-support.js';

const REPO = 'caisson-crash-restart/web';
const CONTAINER = 'caisson-crash-restart-web';
const PARKED = `${CONTAINER}.caisson-prev`;
const PORT = 18320;
const PIDFILE = '/run/caisson-dockerd.pid';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function engineAnswers(): boolean {
  return spawnSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

interface Engine {
  how: string;
  stop(): void;
  start(): void;
}

/** How to stop and start the engine this test talks to. */
function engineControl(): Engine {
  const control = process.env.CAISSON_ENGINE_CONTROL;
  if (control) {
    return {
      how: `${process.env.CAISSON_ENGINE ?? 'the engine'} through scripts/with-engine.sh`,
      stop: () => execFileSync(control, ['stop'], { stdio: 'ignore' }),
      start: () => execFileSync(control, ['start'], { stdio: 'ignore' }),
    };
  }
  // an engine of scripts/with-engine.sh has a control; never restart this machine's instead
  if (process.env.CAISSON_ENGINE && process.env.CAISSON_ENGINE !== 'debian12') {
    throw new Error(`${process.env.CAISSON_ENGINE} has no CAISSON_ENGINE_CONTROL: run this through CAISSON_ENGINE_RESTARTABLE=1 scripts/with-engine.sh`);
  }
  const pid = existsSync(PIDFILE) ? Number(readFileSync(PIDFILE, 'utf8').trim()) : NaN;
  if (pid && alive(pid)) {
    return {
      how: 'scripts/ensure-docker.sh (pid file)',
      stop: () => execFileSync('bash', [join(ROOT, 'scripts/stop-docker.sh')], { stdio: 'ignore' }),
      // setsid: the engine must not belong to the test's process group
      start: () => execFileSync('setsid', ['bash', join(ROOT, 'scripts/ensure-docker.sh')], { stdio: 'ignore' }),
    };
  }
  if (spawnSync('systemctl', ['is-active', '--quiet', 'docker'], { stdio: 'ignore' }).status === 0) {
    return {
      how: 'systemd',
      stop: () => execFileSync('systemctl', ['stop', 'docker.socket', 'docker.service'], { stdio: 'ignore' }),
      start: () => execFileSync('systemctl', ['start', 'docker.service'], { stdio: 'ignore' }),
    };
  }
  const found = execFileSync('pgrep', ['-xo', 'dockerd'], { encoding: 'utf8' }).trim();
  const cmdline = readFileSync(`/proc/${found}/cmdline`, 'utf8').split('\0').filter(Boolean);
  return {
    how: `its own command line (${cmdline.join(' ')})`,
    stop: () => {
      const p = Number(execFileSync('pgrep', ['-xo', 'dockerd'], { encoding: 'utf8' }).trim());
      process.kill(p, 'SIGTERM');
      const until = Date.now() + 60_000;
      while (alive(p) && Date.now() < until) spawnSync('sleep', ['0.2']);
    },
    start: () => {
      const log = openSync('/var/log/caisson-dockerd.log', 'a');
      spawn(cmdline[0]!, cmdline.slice(1), { detached: true, stdio: ['ignore', log, log] }).unref();
    },
  };
}

describe('the Docker engine restarts during an update (RESTARTS dockerd; run serially)', function () {
  this.timeout(600_000);
  let work: string;
  let engine: Engine;
  let f: CliFixture;
  const pk: Record<string, string> = {};

  async function restartEngine(opts: { between?: () => Promise<void> } = {}): Promise<void> {
    engine.stop();
    expect(engineAnswers(), 'the engine is down').to.equal(false);
    try {
      await opts.between?.();
    } finally {
      engine.start();
      await waitFor('the engine to answer again', () => engineAnswers(), 90_000, 300);
    }
  }

  before(async function () {
    this.timeout(300_000);
    ensureBuilt();
    expect(engineAnswers(), 'a Docker engine must answer (bash scripts/ensure-docker.sh)').to.equal(true);
    engine = engineControl();
    work = mkdtempSync(join(tmpdir(), 'caisson-crash-restart-'));
    f = dockerServiceFixture(work, { name: 'rst', revision: 'rst-v1', container: CONTAINER, image: `${REPO}:1.0.0`, port: PORT, stableSecs: 30, timeoutSecs: 60 });
    buildTestImage({ ref: `${REPO}:1.0.0`, version: '1.0.0' });
    buildTestImage({ ref: `${REPO}:1.1.0`, version: '1.1.0' });
    buildTestImage({ ref: `${REPO}:1.2.0`, version: '1.2.0', paddingBytes: 200 * 1024 * 1024 });
    const b = (v: string) => buildPackage({ image: `${REPO}:${v}`, service: 'rst', revision: 'rst-v1', version: v, out: join(work, 'pkg', `${v}.edgepkg`) });
    pk.good = await b('1.1.0');
    pk.big = await b('1.2.0');
    removeImages(`${REPO}:1.1.0`, `${REPO}:1.2.0`);
  });

  after(async () => {
    if (!engineAnswers() && engine) {
      engine.start();
      await waitFor('the engine to answer again', () => engineAnswers(), 90_000, 300).catch(() => undefined);
    }
    removeContainers(CONTAINER, PARKED);
    removeImages(`${REPO}:1.0.0`, `${REPO}:1.1.0`, `${REPO}:1.2.0`);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function reset(): Promise<string> {
    rmSync(f.stateDir, { recursive: true, force: true });
    removeContainers(CONTAINER, PARKED);
    removeImages(`${REPO}:1.1.0`, `${REPO}:1.2.0`);
    const id = runServiceContainer({ name: CONTAINER, image: `${REPO}:1.0.0`, port: PORT });
    expect(await healthyVersion(PORT)).to.equal('1.0.0');
    return id;
  }

  const stateOfUpdate = (): string | undefined => latestUpdateState(f.stateDir);

  function assertRestored(oldId: string): void {
    const now = containerInfo(CONTAINER);
    expect(now?.id, 'the very same old container serves again').to.equal(oldId);
    expect(now?.running).to.equal(true);
    expect(containersNamed(PARKED)).to.deep.equal([]);
  }

  it('during the health window: a bounded wait, then a rollback that starts the old container', async () => {
    const oldId = await reset();
    const load = runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), pk.good!], { timeoutMs: 300_000 });
    await waitFor('the health window', () => stateOfUpdate() === 'health_checking', 60_000, 20);
    // the old container is parked and stopped, not deleted
    expect(containerInfo(PARKED)?.id).to.equal(oldId);

    await restartEngine();
    const r = await load;
    expect(r.signal).to.equal(null);
    expect(r.code, `${engine.how}: ${r.stderr}`).to.equal(3);
    expect(r.json.outcome).to.equal('rolled_back');
    expect(r.stderr).to.not.match(/ROLLBACK FAILED/);
    assertRestored(oldId);
    expect(await healthyVersion(PORT)).to.equal('1.0.0');
    expect(imageExists(`${REPO}:1.1.0`)).to.equal(false);
    const records = (await history(f)).filter((x) => x.kind === 'update');
    expect(records.map((x) => x.outcome)).to.deep.equal(['rolled_back']);
    expect(stagingLeft(f.stateDir)).to.deep.equal([]);
  });

  it('killed in the health window, engine down at recovery: the record stays open, `caisson recover` finishes it later', async () => {
    const oldId = await reset();
    const killed = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), pk.good!], {
      env: { CAISSON_FAULT_KILL_AFTER: 'health_checking' },
    });
    expect(killed.signal).to.equal('SIGKILL');

    await restartEngine({
      between: async () => {
        const down = await runCli(['recover', '--json', ...commonArgs(f)], { timeoutMs: 120_000 });
        expect(down.code).to.equal(1);
        expect(down.json.error.code).to.equal('docker.unreachable');
        const open = (await history(f)).filter((x) => x.kind === 'update');
        expect(open.map((x) => x.outcome)).to.deep.equal(['open']);
      },
    });
    // restart policy "no": after the engine restart neither container runs; the service is down
    expect(containerInfo(CONTAINER)?.running).to.equal(false);
    expect(containerInfo(PARKED)?.id).to.equal(oldId);

    const rec = await runCli(['recover', '--json', ...commonArgs(f)]);
    expect(rec.code, rec.stderr).to.equal(0);
    expect(rec.json.recovered.map((x: any) => x.outcome)).to.deep.equal(['rolled_back']);
    assertRestored(oldId);
    expect(await healthyVersion(PORT)).to.equal('1.0.0');
    const records = (await history(f)).filter((x) => x.kind === 'update');
    expect(records.map((x) => x.outcome)).to.deep.equal(['rolled_back']);
    expect(records[0].error.code).to.equal('update.interrupted');
  });

  it('during the image import: the update resumes, rolls back or is refused; never half-switched', async () => {
    const oldId = await reset();
    const load = runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), pk.big!], { timeoutMs: 300_000 });
    await waitFor('the import', () => stateOfUpdate() === 'loading_image', 120_000, 10);
    await restartEngine();
    const r = await load;
    expect(r.signal).to.equal(null);
    // the engine may finish the import while it shuts down: then the outage hits the switch or
    // the health window, and the update is rolled back instead
    expect(r.json?.outcome, r.stderr).to.be.oneOf(['committed', 'rolled_back', 'rejected']);
    expect(r.stderr).to.not.match(/ROLLBACK FAILED/);
    if (r.json.outcome === 'rolled_back') {
      expect(r.code).to.equal(3);
      assertRestored(oldId);
      expect(await healthyVersion(PORT)).to.equal('1.0.0');
    } else if (r.json.outcome === 'committed') {
      expect(r.code).to.equal(0);
      expect(await healthyVersion(PORT)).to.equal('1.2.0');
      expect(containerInfo(CONTAINER)?.image).to.equal(`${REPO}:1.2.0`);
    } else {
      // refused before the switch: the service was never touched (it only needs starting
      // again if the engine restart stopped it, which is the engine's restart policy, not ours)
      expect(r.code).to.equal(2);
      expect(r.json.error.code).to.match(/^docker\./);
      expect(containerInfo(CONTAINER)?.id).to.equal(oldId);
      expect(imageExists(`${REPO}:1.2.0`)).to.equal(false);
    }
    expect(containersNamed(PARKED)).to.deep.equal([]);
    const records = (await history(f)).filter((x) => x.kind === 'update');
    expect(records).to.have.length(1);
    expect(records[0].outcome).to.equal(r.json.outcome);
    expect(stagingLeft(f.stateDir)).to.deep.equal([]);
  });
});
