// The Debian package on a systemd device, end to end: `npm run package:deb`, then a Debian 12
// system container (systemd as PID 1, its own udevd; test/support/device.ts) in which the
// .deb is installed with apt and no network, and used for real: a loop-attached ext4 stick
// raises a udev event, SYSTEMD_WANTS starts caisson-media@.service, which mounts it;
// caisson-agent.service updates a real service (on the host's engine, through its socket)
// and writes the report onto the stick; the stick's removal stops the unit and unmounts;
// `systemctl stop` lets a running update finish; SIGKILL mid-update and a start recover;
// removing the package keeps history and config, purging drops them.
// Needs root and the Docker engine. Objects: caisson-device-*, host port 18420.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { buildPackage } from '../../agent/package/builder.js';
import { generateKeyPair } from '../../agent/package/signature.js';
import { buildDeb, Device, deviceImage } from '../support/device.js';
import { buildTestImage, docker, dockerOk, removeTestImages } from '../support/images.js';
import { LoopStick, ROOT, loopTestRule } from '../support/udev.js';

const PREFIX = 'caisson-device-';
const SERVICE_CONTAINER = `${PREFIX}web`;
const REPO = `${PREFIX}test/web`;
const PORT = 18420;
const LABEL = 'caisson.test=own';
const VERSIONS = ['1.0.0', '1.1.0', '1.2.0', '1.3.0'];
const MEDIA_ROOT = '/media/caisson';
const STABLE_SECS = 6;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, ms = 90_000, every = 200): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await sleep(every);
  }
}

async function served(): Promise<string> {
  try {
    const r = await fetch(`http://127.0.0.1:${PORT}/version`, { signal: AbortSignal.timeout(2000) });
    return r.ok ? (await r.text()).trim() : '';
  } catch {
    return '';
  }
}

/** The image the service's container runs; '' while the switch has no container by that name. */
function serviceImage(): string {
  const r = spawnSync('docker', ['inspect', '-f', '{{.Config.Image}}', SERVICE_CONTAINER], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}

function ourContainers(): string[] {
  return docker('ps', '-a', '--format', '{{.Names}}', '--filter', `name=^/${SERVICE_CONTAINER}`).split('\n').filter(Boolean);
}

function removeOurContainers(): void {
  const ids = docker('ps', '-aq', '--filter', `name=^/${PREFIX}`).split('\n').filter(Boolean);
  if (ids.length) spawnSync('docker', ['rm', '-f', '-v', ...ids], { stdio: 'ignore' });
}

interface HistoryRow {
  outcome: string | null;
  package_version?: string;
  state: string;
  error?: { code: string };
}

const CATALOG = `catalog_version = 1

[[services]]
name = "web"
service_revision = "web-v1"
platform = "linux/amd64"
runtime_mode = "docker"

[services.docker]
container_name = "${SERVICE_CONTAINER}"
image_reference = "${REPO}:1.0.0"

[services.health_check]
kind = "http"
url = "http://127.0.0.1:${PORT}/health"
timeout_secs = 20
poll_interval_secs = 0.2
stable_secs = ${STABLE_SECS}
`;

describe('device: the Debian package', function () {
  this.timeout(900_000);
  let debDir: string;
  let debName: string;

  before(function () {
    assert.equal(process.getuid?.(), 0, 'the device test needs root (loop devices, a system container)');
    assert.ok(dockerOk('info'), 'the Docker engine must answer (bash scripts/ensure-docker.sh)');
    removeOurContainers();
    debDir = mkdtempSync(join(tmpdir(), 'caisson-device-deb-'));
    debName = basename(buildDeb(debDir));
  });

  after(() => {
    if (debDir) rmSync(debDir, { recursive: true, force: true });
  });

  describe('on Debian 12 with systemd as PID 1: installed offline and used for real', function () {
    let work: string;
    let device: Device | undefined;
    let stick: LoopStick | undefined;
    const pkgs: Record<string, string> = {};

    const history = (): HistoryRow[] => JSON.parse(device!.run('caisson', 'history', 'list', '--json', '--limit', '50')) as HistoryRow[];
    const historyOf = (v: string) => history().filter((r) => r.package_version === v);
    const agentJournal = () => device!.journal('caisson-agent.service');

    /** Drop a package into the inbox the documented way: copy as .part, then rename. */
    function dropIntoInbox(v: string): void {
      const name = basename(pkgs[v]!);
      device!.run('sh', '-c', `cp /mnt/work/pkg/${name} /var/lib/caisson/inbox/${name}.part && mv /var/lib/caisson/inbox/${name}.part /var/lib/caisson/inbox/${name}`);
    }

    before(async function () {
      work = mkdtempSync(join(tmpdir(), 'caisson-device-'));
      for (const d of ['deb', 'pkg', 'keys', 'udev']) mkdirSync(join(work, d));
      copyFileSync(join(debDir, debName), join(work, 'deb', debName));
      const image = deviceImage('bookworm');

      const key = generateKeyPair(join(work, 'keys', 'vendor'));
      for (const v of VERSIONS) buildTestImage({ ref: `${REPO}:${v}`, version: v });
      for (const v of VERSIONS.slice(1)) {
        const out = join(work, 'pkg', `web-${v}.edgepkg`);
        await buildPackage({ imageRef: `${REPO}:${v}`, service: 'web', serviceRevision: 'web-v1', platform: 'linux/amd64', version: v, out, signKeyPath: key.privateKeyPath });
        pkgs[v] = out;
        // the device gets the package, not the image
        spawnSync('docker', ['rmi', '-f', `${REPO}:${v}`], { stdio: 'ignore' });
      }
      docker('run', '-d', '--name', SERVICE_CONTAINER, '--label', LABEL, '--stop-timeout', '1', '-p', `127.0.0.1:${PORT}:8080`, `${REPO}:1.0.0`);
      for (let i = 0; i < 100 && (await served()) !== '1.0.0'; i++) await sleep(100);
      assert.equal(await served(), '1.0.0');

      // the switch for this test's stick only: the device's udevd sees every loop device of the host
      writeFileSync(join(work, 'udev', '99-caisson-loop-test.rules'), loopTestRule());
      device = await Device.boot(image, `${PREFIX}${process.pid}`, [[work, '/mnt/work']]);
    });

    after(async () => {
      device?.remove();
      stick?.cleanup(MEDIA_ROOT);
      removeOurContainers();
      removeTestImages(VERSIONS.map((v) => `${REPO}:${v}`));
      if (work) rmSync(work, { recursive: true, force: true });
    });

    it('apt installs the .deb with no network: the agent is enabled but idle until a catalog exists', () => {
      // the device image has no apt sources; a proxy that answers nothing catches any download
      const r = device!.execWith({ cwd: '/mnt/work/deb' }, 'apt-get', 'install', '-y', '-o', 'Acquire::http::Proxy=http://127.0.0.1:9', `./${debName}`);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.doesNotMatch(r.stdout, /^(Get|Hit|Ign|Err):\S* +https?:/m, 'nothing was downloaded');

      const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
      assert.equal(device!.run('caisson', '--version').trim(), version);
      assert.match(device!.run('/usr/lib/caisson/node', '--version'), /^v20\./);
      assert.equal(device!.run('systemctl', 'is-enabled', 'caisson-agent.service').trim(), 'enabled');
      assert.equal(device!.isActive('caisson-agent.service'), 'inactive');
      assert.equal(device!.unitProperty('caisson-agent.service', 'ConditionResult'), 'no', 'skipped: no services.toml yet');
      assert.equal(device!.run('stat', '-c', '%a %U', '/var/lib/caisson').trim(), '750 root');
      assert.equal(device!.run('stat', '-c', '%a', '/var/lib/caisson/inbox').trim(), '750');
      const conffiles = device!.run('dpkg-query', '-W', '-f', '${Conffiles}', 'caisson');
      assert.match(conffiles, /\/etc\/caisson\/agent\.toml /);
      assert.match(conffiles, /\/etc\/caisson\/services\.toml\.example /);
    });

    it('systemd-analyze security rates the hardened agent unit OK', () => {
      const out = device!.exec('systemd-analyze', 'security', '--no-pager', 'caisson-agent.service').stdout;
      const m = /Overall exposure level for caisson-agent\.service: (\d+\.\d+) (\w+)/.exec(out);
      assert.ok(m, out);
      assert.ok(Number(m[1]) <= 3.0, `exposure ${m[1]} ${m[2]}`);
      assert.equal(m[2], 'OK');
    console.log(`      (systemd-analyze security caisson-agent: ${m[1]} ${m[2]})`);
      assert.equal(device!.unitProperty('caisson-agent.service', 'ProtectSystem'), 'strict');
      assert.equal(device!.unitProperty('caisson-agent.service', 'NoNewPrivileges'), 'yes');
    });

    it('with a catalog and a vendor key the agent starts and logs to the journal', async () => {
      device!.writeFile('/etc/caisson/services.toml', CATALOG);
      device!.run('install', '-m', '0644', '/mnt/work/keys/vendor.pub', '/etc/caisson/trusted-keys/vendor.pub');
      device!.run('systemctl', 'start', 'caisson-agent.service');
      await waitFor(`the agent to start\n${agentJournal()}`, () => agentJournal().includes('agent started'), 60_000);
      assert.equal(device!.isActive('caisson-agent.service'), 'active');
    });

    it('a stick: udev starts caisson-media@, which mounts it; the agent updates the service and writes the report; removal unmounts', async () => {
      device!.run('install', '-D', '-m', '0644', '/mnt/work/udev/99-caisson-loop-test.rules', '/run/udev/rules.d/99-caisson-loop-test.rules');
      device!.run('udevadm', 'control', '--reload');
      stick = LoopStick.create(join(work, 'stick.img'), [pkgs['1.1.0']!]);
      const dev = basename(stick.insert());
      const unit = `caisson-media@${dev}.service`;
      const mp = `${MEDIA_ROOT}/${stick.uuid}`;
      await waitFor(`${unit} to mount the stick`, () => device!.isActive(unit) === 'active' && device!.isMounted(mp), 30_000);
      await waitFor(`the report on the stick\n${agentJournal()}`, () => device!.exec('test', '-s', `${mp}/caisson-result.txt`).status === 0);
      assert.equal(await served(), '1.1.0');
      assert.equal(serviceImage(), `${REPO}:1.1.0`);
      assert.match(device!.run('cat', `${mp}/caisson-result.txt`), /^OK \| web-1\.1\.0\.edgepkg \| service web \| \S+ -> 1\.1\.0 \| Done: /);

      // pull it: detach (auto-clear once unmounted) and the kernel's removal event
      spawnSync('losetup', ['-d', `/dev/${dev}`], { stdio: 'ignore' });
      spawnSync('sh', ['-c', `echo remove > /sys/block/${dev}/uevent`], { stdio: 'ignore' });
      await waitFor(`${unit} to stop and unmount`, () => device!.isActive(unit) !== 'active' && !device!.isMounted(mp), 30_000);
      await waitFor('the loop device to be released', () => !(spawnSync('losetup', ['-j', stick!.image], { encoding: 'utf8' }).stdout ?? '').trim(), 10_000);
      stick.device = undefined;
      assert.match(stick.readFile('caisson-result.txt'), /^OK \| web-1\.1\.0\.edgepkg/);
      assert.match(device!.journal(unit), /mounted/);
      assert.match(agentJournal(), /stick removed/);
    });

    it('systemctl stop during an update lets the update finish within TimeoutStopSec', async () => {
      dropIntoInbox('1.2.0');
      await waitFor('the new version to be switched in', () => serviceImage() === `${REPO}:1.2.0`);
      const t0 = Date.now();
      device!.run('systemctl', 'stop', 'caisson-agent.service');
      const took = (Date.now() - t0) / 1000;
      const timeout = device!.unitProperty('caisson-agent.service', 'TimeoutStopUSec');
      assert.equal(timeout, '10min');
      assert.ok(took < 600, `stopping took ${took} s`);
      assert.equal(device!.unitProperty('caisson-agent.service', 'Result'), 'success', 'exited by itself, not killed');
      assert.equal(device!.unitProperty('caisson-agent.service', 'ExecMainStatus'), '0');
      assert.equal(await served(), '1.2.0', 'the running update was finished');
      assert.deepEqual(
        historyOf('1.2.0').map((r) => r.outcome),
        ['committed'],
      );
      const journal = agentJournal();
      assert.match(journal, /stopping/);
      assert.match(journal, /state lock released/);
      console.log(`      (stop during an update took ${took.toFixed(1)} s)`);
    });

    it('SIGKILL mid-update, then a start: the interrupted update is reversed and the package applied again', async () => {
      device!.run('systemctl', 'start', 'caisson-agent.service');
      await waitFor('the agent to be active', () => device!.isActive('caisson-agent.service') === 'active', 30_000);
      dropIntoInbox('1.3.0');
      await waitFor('the new version to be switched in', () => serviceImage() === `${REPO}:1.3.0`);
      device!.run('systemctl', 'kill', '-s', 'KILL', 'caisson-agent.service');
      await waitFor('the agent to be gone', () => device!.isActive('caisson-agent.service') !== 'active', 10_000, 50);
      device!.run('systemctl', 'start', 'caisson-agent.service');
      await waitFor(`recovery\n${agentJournal()}`, () => agentJournal().includes('recovered an interrupted update'), 60_000);
      // the inbox is the durable queue: the package still in it is applied afresh
      await waitFor(`the package to be applied again\n${agentJournal()}`, () => historyOf('1.3.0').filter((r) => r.outcome === 'committed').length === 1);
      const rows = historyOf('1.3.0');
      assert.deepEqual(rows.map((r) => r.outcome).sort(), ['committed', 'rolled_back'], JSON.stringify(rows));
      assert.ok(rows.every((r) => r.state.startsWith('closed') || r.outcome !== null));
      assert.equal(await served(), '1.3.0');
      assert.deepEqual(ourContainers(), [SERVICE_CONTAINER], 'exactly one container serves web; nothing parked is left');
      assert.equal(device!.isActive('caisson-agent.service'), 'active');
    });

    it('reinstalling (what an upgrade runs) keeps an edited agent.toml and restarts the agent', async () => {
      await waitFor('the agent to be idle', () => device!.exec('sh', '-c', 'ls /var/lib/caisson/inbox/*.edgepkg').status !== 0, 60_000);
      const before = device!.unitProperty('caisson-agent.service', 'MainPID');
      device!.run('sh', '-c', 'echo "# edited on the device" >> /etc/caisson/agent.toml');
      const r = device!.execWith(
        { cwd: '/mnt/work/deb' },
        'apt-get', 'install', '-y', '--reinstall', '-o', 'Dpkg::Options::=--force-confold', '-o', 'Acquire::http::Proxy=http://127.0.0.1:9', `./${debName}`,
      );
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(device!.run('tail', '-n', '1', '/etc/caisson/agent.toml'), /# edited on the device/);
      await waitFor('the agent to run again', () => device!.isActive('caisson-agent.service') === 'active', 30_000);
      assert.notEqual(device!.unitProperty('caisson-agent.service', 'MainPID'), before, 'restarted by postinst');
      assert.equal(device!.run('systemctl', 'is-enabled', 'caisson-agent.service').trim(), 'enabled');
    });

    it('removing the package stops the agent and keeps history and config; purging drops them', () => {
      device!.run('apt-get', 'remove', '-y', 'caisson');
      assert.notEqual(device!.isActive('caisson-agent.service'), 'active');
      assert.equal(device!.exec('test', '-e', '/usr/bin/caisson').status, 1);
      assert.equal(device!.exec('test', '-s', '/etc/caisson/services.toml').status, 0);
      assert.equal(device!.exec('test', '-f', '/etc/caisson/agent.toml').status, 0);
      assert.ok(device!.run('ls', '/var/lib/caisson').split('\n').length > 1, 'history stays');
      device!.run('apt-get', 'purge', '-y', 'caisson');
      assert.equal(device!.exec('test', '-e', '/var/lib/caisson').status, 1);
      assert.equal(device!.exec('test', '-e', '/etc/caisson').status, 1);
      assert.equal(device!.exec('systemctl', 'is-enabled', 'caisson-agent.service').status !== 0, true);
    });
  });

  describe('on Debian 13: installed offline', function () {
    let device: Device | undefined;

    before(async function () {
      device = await Device.boot(deviceImage('trixie'), `${PREFIX}trixie-${process.pid}`, [[debDir, '/mnt/deb']]);
    });

    after(() => device?.remove());

    it('apt installs it with no network; the carried runtime and its SQLite module work', () => {
      const r = device!.execWith({ cwd: '/mnt/deb' }, 'apt-get', 'install', '-y', '-o', 'Acquire::http::Proxy=http://127.0.0.1:9', `./${debName}`);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(device!.run('grep', 'VERSION_ID', '/etc/os-release'), /"13"/);
      assert.match(device!.run('/usr/lib/caisson/node', '--version'), /^v20\./);
      // opens the history database: better-sqlite3 loads in the carried runtime
      assert.match(device!.run('caisson', 'history', 'list'), /no history yet/);
      assert.equal(device!.run('systemctl', 'is-enabled', 'caisson-agent.service').trim(), 'enabled');
      assert.equal(device!.unitProperty('caisson-agent.service', 'ConditionResult'), 'no');
    });
  });
});
