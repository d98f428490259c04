// End to end with the real parts: systemd-udevd with the project's rule (loop switch on),
// the POSIX helper mounting ext4 image "sticks", `caisson agent` as its own process (the
// CLI, the real pipeline, the real Docker engine), LED files and reports read back from
// the detached images. Needs root. Objects are named caisson-e2e-*, host port 18210;
// containers carry caisson.test=own (not caught by label-wide cleanups of other suites).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPackage } from '../../agent/package/builder.js';
import { acquireStateLock } from '../../agent/store/lock.js';
import { openDatabase } from '../../agent/store/db.js';
import { buildTestImage, docker, dockerOk, removeTestImages } from '../support/images.js';
import { LoopStick, ROOT, isMounted, setupUdev, type UdevHarness } from '../support/udev.js';
import { testPort } from '../support/ports.js';

const PREFIX = 'caisson-e2e-';
const CONTAINER = `${PREFIX}web`;
const REPO = `${PREFIX}web`;
const PORT = testPort(18210);
const LABEL = 'caisson.test=own';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, ms = 90_000, every = 50): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await sleep(every);
  }
}

async function httpText(path: string): Promise<string> {
  try {
    const r = await fetch(`http://127.0.0.1:${PORT}${path}`, { signal: AbortSignal.timeout(2000) });
    return r.ok ? (await r.text()).trim() : '';
  } catch {
    return '';
  }
}

function removeOurContainers(): void {
  const ids = docker('ps', '-aq', '--filter', `name=^/${PREFIX}`).split('\n').filter(Boolean);
  if (ids.length) spawnSync('docker', ['rm', '-f', '-v', ...ids], { stdio: 'ignore' });
}

describe('e2e: USB stick → udev → agent → container, LED and report on the stick', function () {
  this.timeout(600_000);
  let work: string;
  let mediaRoot: string;
  let stateDir: string;
  let ledDir: string;
  let configPath: string;
  let udev: UdevHarness | undefined;
  let agent: ChildProcess | undefined;
  let agentLog = '';
  let agentExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  const pkgs: Record<string, string> = {};
  const sticks: LoopStick[] = [];

  const led = () => {
    const read = (f: string) => {
      try {
        return readFileSync(join(ledDir, f), 'utf8').trim();
      } catch {
        return '';
      }
    };
    return { trigger: read('trigger'), brightness: read('brightness'), delay_on: read('delay_on') };
  };
  const ledIs = (s: 'idle' | 'working' | 'success' | 'failure') => {
    const l = led();
    if (s === 'idle') return l.trigger === 'none' && l.brightness === '0';
    if (s === 'success') return l.trigger === 'none' && l.brightness === '1';
    return l.trigger === 'timer' && l.delay_on === (s === 'working' ? '1000' : '100');
  };

  function startAgent(): void {
    agentLog = '';
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'agent/cli/main.ts'), 'agent', '--config', configPath], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (agentLog += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (agentLog += d.toString()));
    agentExit = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    agent = child;
  }

  function newStick(name: string, files: string[]): LoopStick {
    const s = LoopStick.create(join(work, `${name}.img`), files);
    sticks.push(s);
    return s;
  }

  async function insertAndWait(stick: LoopStick, result: 'success' | 'failure'): Promise<void> {
    assert.ok(ledIs('idle'), `LED idle before insertion (${JSON.stringify(led())})`);
    stick.insert();
    await waitFor('udev to mount the stick', () => isMounted(stick.mountpoint(mediaRoot)), 30_000);
    await waitFor(`the LED to show ${result}\n${agentLog}`, () => ledIs(result));
  }

  async function pull(stick: LoopStick): Promise<void> {
    stick.pull(mediaRoot);
    await waitFor('the helper to announce the removal', () => agentLog.includes(`stick removed (uuid="${stick.uuid}")`), 30_000);
    await waitFor('the LED to go off after removal', () => ledIs('idle'), 10_000);
  }

  function containerState(): { id: string; image: string; startedAt: string; running: boolean } {
    const [id, image, startedAt, running] = docker('inspect', '-f', '{{.Id}} {{.Config.Image}} {{.State.StartedAt}} {{.State.Running}}', CONTAINER).split(' ');
    return { id: id!, image: image!, startedAt: startedAt!, running: running === 'true' };
  }

  before(async function () {
    assert.equal(process.getuid?.(), 0, 'the end-to-end tests need root (udev, mount, losetup)');
    assert.ok(dockerOk('info'), 'the Docker engine must answer (bash scripts/ensure-docker.sh)');
    work = mkdtempSync(join(tmpdir(), 'caisson-e2e-'));
    mediaRoot = join(work, 'media');
    stateDir = join(work, 'state');
    ledDir = join(work, 'led');
    for (const d of [mediaRoot, stateDir, ledDir, join(work, 'keys'), join(work, 'pkg')]) mkdirSync(d, { recursive: true });
    removeOurContainers();

    buildTestImage({ ref: `${REPO}:1.0.0`, version: '1.0.0' });
    buildTestImage({ ref: `${REPO}:1.1.0`, version: '1.1.0' });
    buildTestImage({ ref: `${REPO}:1.2.0`, version: '1.2.0', behaviour: 'exit' });
    for (const v of ['1.4.0', '1.5.0', '1.6.0']) buildTestImage({ ref: `${REPO}:${v}`, version: v });
    for (const v of ['1.1.0', '1.2.0', '1.4.0', '1.5.0', '1.6.0']) {
      const out = join(work, 'pkg', `web-${v}.edgepkg`);
      await buildPackage({ imageRef: `${REPO}:${v}`, service: 'web', serviceRevision: 'web-v1', platform: 'linux/amd64', version: v, out });
      pkgs[v] = out;
      // the device has the package, not the image
      spawnSync('docker', ['rmi', '-f', `${REPO}:${v}`], { stdio: 'ignore' });
    }
    docker('run', '-d', '--name', CONTAINER, '--label', LABEL, '--stop-timeout', '1', '-p', `127.0.0.1:${PORT}:8080`, `${REPO}:1.0.0`);
    for (let i = 0; i < 100 && (await httpText('/version')) !== '1.0.0'; i++) await sleep(100);
    assert.equal(await httpText('/version'), '1.0.0');

    const services = join(work, 'services.toml');
    writeFileSync(
      services,
      `catalog_version = 1

[[services]]
name = "web"
service_revision = "web-v1"
platform = "linux/amd64"
runtime_mode = "docker"

[services.docker]
container_name = "${CONTAINER}"
image_reference = "${REPO}:1.0.0"

[services.health_check]
kind = "http"
url = "http://127.0.0.1:${PORT}/health"
timeout_secs = 8
poll_interval_secs = 0.2
stable_secs = 2
`,
    );
    configPath = join(work, 'agent.toml');
    writeFileSync(
      configPath,
      `media_root = "${mediaRoot}"
inbox = "${join(work, 'inbox')}"
state_dir = "${stateDir}"
services = "${services}"
trusted_keys_dir = "${join(work, 'keys')}"
[led]
paths = ["${ledDir}"]
[intake]
check_interval_secs = 0.2
`,
    );
    udev = setupUdev({ mediaRoot, stateDir, tag: `e2e-${process.pid}` });
    startAgent();
    await waitFor(`the agent to start\n${agentLog}`, () => agentLog.includes('agent: agent started'), 60_000);
  });

  after(async () => {
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      agent.kill('SIGKILL');
      await agentExit;
    }
    for (const s of sticks) s.cleanup(mediaRoot);
    udev?.teardown();
    removeOurContainers();
    removeTestImages(['1.0.0', '1.1.0', '1.2.0', '1.4.0', '1.5.0', '1.6.0'].map((v) => `${REPO}:${v}`));
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('a stick with a good package: udev mounts it, the update is applied, LED ends at success, the report is on the stick', async () => {
    const stick = newStick('good', [pkgs['1.1.0']!]);
    await insertAndWait(stick, 'success');
    assert.equal(await httpText('/version'), '1.1.0');
    assert.equal(containerState().image, `${REPO}:1.1.0`);
    await sleep(500);
    assert.ok(ledIs('success'), 'the result stays while the stick is in');
    await pull(stick);
    const lines = stick.readFile('caisson-result.txt').trimEnd().split('\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^OK \| web-1\.1\.0\.edgepkg \| service web \| .* -> 1\.1\.0 \| Done: /);
    const reports = stick.list('caisson-reports').sort();
    assert.equal(reports.length, 2);
    assert.match(reports[0]!, /^\d{8}T\d{6}Z-web-1\.1\.0\.json$/);
    const json = JSON.parse(stick.readFile(`caisson-reports/${reports[0]}`));
    assert.equal(json.result, 'OK');
    assert.equal(json.medium_uuid, stick.uuid);
    assert.equal(json.update.outcome, 'committed');
    assert.match(stick.readFile(`caisson-reports/${reports[1]}`), /Result: OK/);
  });

  it('a stick with a failing package: rolled back, FAILED line, failure LED', async () => {
    const stick = newStick('bad', [pkgs['1.2.0']!]);
    await insertAndWait(stick, 'failure');
    assert.equal(await httpText('/version'), '1.1.0', 'the previous version serves again');
    assert.equal(containerState().image, `${REPO}:1.1.0`);
    assert.ok(containerState().running);
    await pull(stick);
    const line = stick.readFile('caisson-result.txt').trimEnd();
    assert.match(line, /^FAILED \| web-1\.2\.0\.edgepkg \| service web \| 1\.1\.0 -> 1\.2\.0 \| rolled back to 1\.1\.0; [a-z]+\.[a-z_]+: /);
    const json = stick.list('caisson-reports').find((n) => n.endsWith('.json'))!;
    assert.equal(JSON.parse(stick.readFile(`caisson-reports/${json}`)).update.outcome, 'rolled_back');
  });

  it('the first stick again: already installed, the container is not restarted', async () => {
    const stick = sticks[0]!;
    const before = containerState();
    await insertAndWait(stick, 'success');
    const afterState = containerState();
    assert.equal(afterState.id, before.id);
    assert.equal(afterState.startedAt, before.startedAt, 'the container was not restarted');
    await pull(stick);
    const line = stick.readFile('caisson-result.txt').trimEnd();
    assert.match(line, /^ALREADY INSTALLED \| web-1\.1\.0\.edgepkg \| service web \|/);
    assert.equal(stick.list('caisson-reports').length, 4, 'the earlier report stays, the new one is added');
  });

  function historyOf(file: string): { outcome: string | null; closed: number }[] {
    const db = openDatabase(stateDir);
    try {
      return db.prepare('SELECT outcome, closed FROM updates WHERE package_file LIKE ? ORDER BY started_at').all(`%${file}`) as {
        outcome: string | null;
        closed: number;
      }[];
    } finally {
      db.close();
    }
  }

  it('inbox: a package copied in slowly, with a long pause, is applied once, after it is complete', async () => {
    const src = readFileSync(pkgs['1.4.0']!);
    const target = join(work, 'inbox', 'web-1.4.0.edgepkg');
    const fd = openSync(target, 'w');
    const half = Math.floor(src.length / 2 / 512) * 512;
    writeSync(fd, src, 0, half);
    await sleep(1200); // the size stands still for ~6 checks (0.2 s apart; 3 needed)
    assert.deepEqual(historyOf('web-1.4.0.edgepkg'), [], 'a half-copied package was taken');
    for (let off = half; off < src.length; off += 256 * 1024) {
      writeSync(fd, src, off, Math.min(256 * 1024, src.length - off));
      await sleep(50);
    }
    closeSync(fd);
    const processed = join(work, 'inbox', 'processed');
    await waitFor(`the package to be processed\n${agentLog}`, () => existsSync(processed) && readdirSync(processed).some((n) => n.endsWith('web-1.4.0.edgepkg')));
    assert.equal(await httpText('/version'), '1.4.0');
    assert.deepEqual(historyOf('web-1.4.0.edgepkg'), [{ outcome: 'committed', closed: 1 }]);
    const names = readdirSync(processed);
    assert.ok(names.some((n) => n.endsWith('web-1.4.0.json')));
    assert.ok(names.some((n) => n.endsWith('web-1.4.0.txt')));
    assert.equal(existsSync(target), false);
    assert.ok(ledIs('idle'), 'inbox work does not touch the LED');
  });

  it('a read-only stick: applied, the report waits, and is written at its next writable insertion', async () => {
    const stick = newStick('readonly', [pkgs['1.5.0']!]);
    execFileSync('tune2fs', ['-O', 'read-only', stick.image], { stdio: 'ignore' });
    await insertAndWait(stick, 'success');
    assert.equal(await httpText('/version'), '1.5.0');
    await pull(stick);
    assert.deepEqual(stick.list('').filter((n) => n.startsWith('caisson')), [], 'nothing could be written');
    execFileSync('tune2fs', ['-O', '^read-only', stick.image], { stdio: 'ignore' });
    await insertAndWait(stick, 'success');
    await pull(stick);
    const lines = stick.readFile('caisson-result.txt').trimEnd().split('\n');
    assert.deepEqual(
      lines.map((l) => l.split(' | ')[0]),
      ['OK', 'ALREADY INSTALLED'],
    );
    assert.match(lines[0]!, /^OK \| web-1\.5\.0\.edgepkg \| service web \| 1\.4\.0 -> 1\.5\.0 \|/);
    assert.equal(stick.list('caisson-reports').length, 4, stick.list('caisson-reports').join(' '));
  });

  it('SIGTERM during an update: the update finishes, the agent exits 0 and releases the state lock', async () => {
    const stick = newStick('sigterm', [pkgs['1.6.0']!]);
    stick.insert();
    await waitFor('the LED to show working', () => ledIs('working'), 60_000, 20);
    agent!.kill('SIGTERM');
    const exit = await agentExit!;
    assert.deepEqual(exit, { code: 0, signal: null }, agentLog);
    assert.match(agentLog, /agent: stopping/);
    assert.match(agentLog, /agent: state lock released/);
    assert.equal(await httpText('/version'), '1.6.0', 'the running update was finished, not abandoned');
    const db = openDatabase(stateDir);
    try {
      const open = db.prepare('SELECT count(*) AS n FROM updates WHERE closed = 0').get() as { n: number };
      assert.equal(open.n, 0, 'no update was left open');
      const last = db.prepare("SELECT outcome FROM updates WHERE package_file LIKE '%web-1.6.0.edgepkg' ORDER BY started_at DESC").get() as { outcome: string };
      assert.equal(last.outcome, 'committed');
    } finally {
      db.close();
    }
    const lock = acquireStateLock(stateDir, 'e2e check');
    lock.release();
    assert.ok(ledIs('idle'), 'the LED is off when the agent is not running');
    stick.pull(mediaRoot);
  });
});
