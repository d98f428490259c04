// The Docker engine stops and comes back in the middle of an update. This test STOPS AND
// RESTARTS THE ENGINE: run it alone (CI runs it serially), never beside other Docker tests.
//
// The engine is restarted the way it was started: through CAISSON_ENGINE_CONTROL when
// scripts/with-engine.sh runs it (a docker-in-docker engine: restarting it touches nothing
// else, so `CAISSON_ENGINE_RESTARTABLE=1 scripts/with-engine.sh docker28 -- npx mocha
// THIS_FILE` is safe beside other work), else the dockerd of scripts/ensure-docker.sh (pid file), else systemd's docker unit,
// else the running dockerd with its own command line.
import assert from 'node:assert/strict';
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
  type CliResult,
} from './pipeline-support.js';

const REPO = 'caisson-crash-restart/web';
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

/**
 * One service per case, each with its own container, port, catalog and state dir, so that a
 * single engine restart serves all three: each case still sees the outage at its own point
 * (health window, killed before recovery, image import) and is checked on its own.
 */
interface Case {
  container: string;
  parked: string;
  port: number;
  /** The version its package brings. */
  version: string;
  f: CliFixture;
  oldId: string;
}

function serviceCase(work: string, name: string, o: { container: string; port: number; version: string; stableSecs: number; timeoutSecs: number }): Case {
  const dir = join(work, name);
  const f = dockerServiceFixture(dir, { name: 'rst', revision: 'rst-v1', container: o.container, image: `${REPO}:1.0.0`, port: o.port, stableSecs: o.stableSecs, timeoutSecs: o.timeoutSecs });
  return { container: o.container, parked: `${o.container}.caisson-prev`, port: o.port, version: o.version, f, oldId: '' };
}

describe('the Docker engine restarts during an update (RESTARTS dockerd; run serially)', function () {
  this.timeout(600_000);
  let work: string;
  let engine: Engine;
  let window: Case;
  let killed: Case;
  let importing: Case;
  const pk: Record<string, string> = {};
  const cases = (): Case[] => [window, killed, importing].filter(Boolean);
  const versions = ['1.1.0', '1.1.1', '1.2.0'];

  // what each case saw around the one restart
  let windowParked: string | undefined;
  let windowLoad: CliResult;
  let killedRun: CliResult;
  let recoverWhileDown: CliResult;
  let recordsWhileDown: any[];
  let importLoad: CliResult;

  const stateOf = (c: Case): string | undefined => latestUpdateState(c.f.stateDir);

  async function startOld(c: Case): Promise<void> {
    c.oldId = runServiceContainer({ name: c.container, image: `${REPO}:1.0.0`, port: c.port });
    assert.equal(await healthyVersion(c.port), '1.0.0');
  }

  function assertRestored(c: Case): void {
    const now = containerInfo(c.container);
    assert.equal(now?.id, c.oldId, 'the very same old container serves again');
    assert.equal(now?.running, true);
    assert.deepEqual(containersNamed(c.parked), []);
  }

  const updates = async (c: Case): Promise<any[]> => (await history(c.f)).filter((x) => x.kind === 'update');

  before(async function () {
    ensureBuilt();
    assert.equal(engineAnswers(), true, 'a Docker engine must answer (bash scripts/ensure-docker.sh)');
    engine = engineControl();
    work = mkdtempSync(join(tmpdir(), 'caisson-crash-restart-'));
    // The window's new version never answers /health and its window is long: the update is
    // still in it when the engine stops, however slowly the import below gets going. A
    // rollback watches the restored version for stable_secs, so that stays short.
    window = serviceCase(work, 'window', { container: 'caisson-crash-restart-web', port: 18320, version: '1.1.0', stableSecs: 1, timeoutSecs: 240 });
    killed = serviceCase(work, 'killed', { container: 'caisson-crash-restart-killed', port: 18321, version: '1.1.1', stableSecs: 1, timeoutSecs: 60 });
    importing = serviceCase(work, 'import', { container: 'caisson-crash-restart-import', port: 18322, version: '1.2.0', stableSecs: 1, timeoutSecs: 30 });
    buildTestImage({ ref: `${REPO}:1.0.0`, version: '1.0.0' });
    for (const c of cases()) {
      buildTestImage({
        ref: `${REPO}:${c.version}`,
        version: c.version,
        behaviour: c === window ? 'no-health' : 'healthy',
        // an import that lasts: the engine stops in the middle of it
        paddingBytes: c === importing ? 64 * 1024 * 1024 : undefined,
      });
    }
    await Promise.all(cases().map(async (c) => {
      pk[c.version] = await buildPackage({ image: `${REPO}:${c.version}`, service: 'rst', revision: 'rst-v1', version: c.version, out: join(work, 'pkg', `${c.version}.edgepkg`) });
    }));
    removeImages(...versions.map((v) => `${REPO}:${v}`));
    for (const c of cases()) await startOld(c);

    // killed in its health window before the engine goes down
    killedRun = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(killed.f), pk[killed.version]!], {
      env: { CAISSON_FAULT_KILL_AFTER: 'health_checking' },
    });
    // one update in its health window (the old container parked and stopped, not deleted) …
    const windowRun = runCli(['package', 'load', '--yes', '--json', ...commonArgs(window.f), pk[window.version]!], { timeoutMs: 300_000 });
    await waitFor('the health window', () => stateOf(window) === 'health_checking', 60_000, 20);
    windowParked = containerInfo(window.parked)?.id;
    // … and one in its image import, when the engine stops
    const importRun = runCli(['package', 'load', '--yes', '--json', ...commonArgs(importing.f), pk[importing.version]!], { timeoutMs: 300_000 });
    await waitFor('the import', () => stateOf(importing) === 'loading_image', 120_000, 10);

    engine.stop();
    try {
      assert.equal(engineAnswers(), false, 'the engine is down');
      recoverWhileDown = await runCli(['recover', '--json', ...commonArgs(killed.f)], { timeoutMs: 120_000 });
      recordsWhileDown = await updates(killed);
    } finally {
      engine.start();
      await waitFor('the engine to answer again', () => engineAnswers(), 90_000, 300);
    }
    [windowLoad, importLoad] = await Promise.all([windowRun, importRun]);
  });

  after(async () => {
    if (!engineAnswers() && engine) {
      engine.start();
      await waitFor('the engine to answer again', () => engineAnswers(), 90_000, 300).catch(() => undefined);
    }
    for (const c of cases()) removeContainers(c.container, c.parked);
    removeImages(`${REPO}:1.0.0`, ...versions.map((v) => `${REPO}:${v}`));
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('during the health window: a bounded wait, then a rollback that starts the old container', async () => {
    assert.equal(windowParked, window.oldId, 'in the window, the old container is parked, not deleted');
    const r = windowLoad;
    assert.equal(r.signal, null);
    assert.equal(r.code, 3, `${engine.how}: ${r.stderr}`);
    assert.equal(r.json.outcome, 'rolled_back');
    assert.notEqual(r.json.error?.code, 'health.timeout', 'the engine restart ended the window, not its timeout');
    assert.doesNotMatch(r.stderr, /ROLLBACK FAILED/);
    assertRestored(window);
    assert.equal(await healthyVersion(window.port), '1.0.0');
    assert.equal(imageExists(`${REPO}:${window.version}`), false);
    assert.deepEqual((await updates(window)).map((x) => x.outcome), ['rolled_back']);
    assert.deepEqual(stagingLeft(window.f.stateDir), []);
  });

  it('killed in the health window, engine down at recovery: the record stays open, `caisson recover` finishes it later', async () => {
    assert.equal(killedRun.signal, 'SIGKILL');
    assert.equal(recoverWhileDown.code, 1);
    assert.equal(recoverWhileDown.json.error.code, 'docker.unreachable');
    assert.deepEqual(recordsWhileDown.map((x) => x.outcome), ['open']);
    // restart policy "no": after the engine restart neither container runs; the service is down
    assert.equal(containerInfo(killed.container)?.running, false);
    assert.equal(containerInfo(killed.parked)?.id, killed.oldId);

    const rec = await runCli(['recover', '--json', ...commonArgs(killed.f)]);
    assert.equal(rec.code, 0, rec.stderr);
    assert.deepEqual(rec.json.recovered.map((x: any) => x.outcome), ['rolled_back']);
    assertRestored(killed);
    assert.equal(await healthyVersion(killed.port), '1.0.0');
    const records = await updates(killed);
    assert.deepEqual(records.map((x) => x.outcome), ['rolled_back']);
    assert.equal(records[0].error.code, 'update.interrupted');
  });

  it('during the image import: the update resumes, rolls back or is refused; never half-switched', async () => {
    const r = importLoad;
    const ref = `${REPO}:${importing.version}`;
    assert.equal(r.signal, null);
    // the engine may finish the import while it shuts down: then the outage hits the switch or
    // the health window, and the update is rolled back instead
    assert.ok(['committed', 'rolled_back', 'rejected'].includes(r.json?.outcome), r.stderr);
    assert.doesNotMatch(r.stderr, /ROLLBACK FAILED/);
    if (r.json.outcome === 'rolled_back') {
      assert.equal(r.code, 3);
      assertRestored(importing);
      assert.equal(await healthyVersion(importing.port), '1.0.0');
    } else if (r.json.outcome === 'committed') {
      assert.equal(r.code, 0);
      assert.equal(await healthyVersion(importing.port), importing.version);
      assert.equal(containerInfo(importing.container)?.image, ref);
    } else {
      // refused before the switch: the service was never touched (it only needs starting
      // again if the engine restart stopped it, which is the engine's restart policy, not ours)
      assert.equal(r.code, 2);
      assert.match(r.json.error.code, /^docker\./);
      assert.equal(containerInfo(importing.container)?.id, importing.oldId);
      assert.equal(imageExists(ref), false);
    }
    assert.deepEqual(containersNamed(importing.parked), []);
    const records = await updates(importing);
    assert.equal(records.length, 1);
    assert.equal(records[0].outcome, r.json.outcome);
    assert.deepEqual(stagingLeft(importing.f.stateDir), []);
  });
});
