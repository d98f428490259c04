// `caisson agent` as its own process (the CLI, the real pipeline against the real engine)
// with hostile sticks in: a stick whose caisson-reports/ holds FIFOs and /dev/zero links
// under the names its coming report will want and whose package name forges log lines,
// and a stick that stops answering altogether (a FUSE mount nobody serves). The agent must
// write nothing outside the stick, keep taking inbox packages, log nothing raw, and stop
// on SIGTERM. Sticks are tmpfs/FUSE mounts announced by event files, as the udev helper
// does (test/e2e/udev-mount.test.ts covers the helper). Needs root and the engine (ping only).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tarEnd, tarEntry } from '../../agent/package/tar-writer.js';
import { reportBaseName } from '../../agent/report/format.js';
import type { UpdateResult } from '../../agent/pipeline/types.js';
import { dockerOk } from '../support/images.js';
import { ROOT } from '../support/udev.js';
import { fuseAvailable, mountHungStick, type HungStick } from '../support/hung-stick.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await sleep(50);
  }
}

// a package name that forges a "committed" log line and recolours the terminal
const EVIL_NAME = 'evil\n2026-01-01T00:00:00.000Z info committed: web now runs web:9.9.9 (9.9.9)\x1b[31m\x1b]0;owned\x07.edgepkg';
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

/** A whole tar the pipeline refuses quickly (a manifest and no image). */
function refusedPackage(): Buffer {
  return Buffer.concat([tarEntry({ name: 'manifest.toml' }, Buffer.from('format_version = 1\n')), tarEnd()]);
}

describe('e2e: the agent with hostile sticks in', function () {
  this.timeout(300_000);
  let work: string;
  let mediaRoot: string;
  let stateDir: string;
  let inbox: string;
  let ledDir: string;
  let outside: string;
  let agent: ChildProcess | undefined;
  let agentExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  let agentOut = '';
  let hung: HungStick | undefined;
  const tmpfs: string[] = [];

  const led = (f: string) => {
    try {
      return readFileSync(join(ledDir, f), 'utf8').trim();
    } catch {
      return '';
    }
  };

  function announce(uuid: string): void {
    const events = join(stateDir, 'media-events');
    mkdirSync(events, { recursive: true });
    const seq = `${Date.now()}000000`;
    writeFileSync(join(events, '.tmp'), `caisson-media-event 1\naction=add\nkernel=test0\nuuid=${uuid}\nseq=${seq}\n`);
    renameSync(join(events, '.tmp'), join(events, `${seq}.${uuid}.add.event`));
  }

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'needs root (mounts)');
    assert.ok(dockerOk('info'), 'the Docker engine must answer');
    assert.ok(fuseAvailable(), 'needs /dev/fuse (a stick that stops answering)');
    work = mkdtempSync(join(tmpdir(), 'caisson-e2e-hostile-'));
    mediaRoot = join(work, 'media');
    stateDir = join(work, 'state');
    inbox = join(work, 'inbox');
    ledDir = join(work, 'led');
    outside = join(work, 'outside');
    for (const d of [mediaRoot, stateDir, ledDir, outside, join(work, 'keys')]) mkdirSync(d, { recursive: true });
    writeFileSync(join(outside, 'victim'), 'keep me');
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
container_name = "caisson-e2e-hostile-web"
image_reference = "caisson-e2e-hostile-web:1.0.0"
`,
    );
    const config = join(work, 'agent.toml');
    writeFileSync(
      config,
      `media_root = "${mediaRoot}"
inbox = "${inbox}"
state_dir = "${stateDir}"
services = "${services}"
trusted_keys_dir = "${join(work, 'keys')}"
[led]
paths = ["${ledDir}"]
[intake]
check_interval_secs = 0.2
stick_timeout_secs = 4
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'agent/cli/main.ts'), 'agent', '--config', config], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (agentOut += d.toString('latin1')));
    child.stderr!.on('data', (d: Buffer) => (agentOut += d.toString('latin1')));
    agentExit = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    agent = child;
    await waitFor(`the agent to start\n${agentOut}`, () => agentOut.includes('agent: agent started'));
  });

  after(async () => {
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      agent.kill('SIGKILL');
      await agentExit;
    }
    await hung?.release();
    for (const m of tmpfs) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('says at start that signatures are not required (no trusted keys)', () => {
    assert.match(agentOut, /signatures: NOT required \(no trusted keys in [^)]*\): unsigned packages are accepted/);
  });

  it('a hung stick and a stick full of traps: the inbox is still served, nothing leaves the stick, the log stays clean, SIGTERM stops it', async () => {
    // 1. a stick that never answers
    const hungUuid = `DEAD-${randomUUID().slice(0, 8)}`;
    hung = await mountHungStick(join(mediaRoot, hungUuid));
    announce(hungUuid);

    // 2. a stick whose report names are all taken by FIFOs and /dev/zero links, and whose
    //    result file is a link to a file outside the stick
    const uuid = `BEEF-${randomUUID().slice(0, 8)}`;
    const stick = join(mediaRoot, uuid);
    mkdirSync(stick);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,nosuid,nodev,noexec', 'caisson-hostile-stick', stick]);
    tmpfs.push(stick);
    writeFileSync(join(stick, EVIL_NAME), refusedPackage());
    symlinkSync(join(outside, 'victim'), join(stick, 'caisson-result.txt'));
    const reports = join(stick, 'caisson-reports');
    mkdirSync(reports);
    const now = Date.now();
    for (let s = -5; s < 120; s++) {
      const at = new Date(now + s * 1000).toISOString();
      const base = reportBaseName({ package_file: join(stick, EVIL_NAME), started_at: at, finished_at: at } as UpdateResult);
      if (s % 2 === 0) execFileSync('mkfifo', [join(reports, `${base}.json`), join(reports, `${base}.txt`)]);
      else {
        symlinkSync('/dev/zero', join(reports, `${base}.json`));
        symlinkSync('/dev/zero', join(reports, `${base}.txt`));
      }
    }
    announce(uuid);

    // 3. an inbox package while both sticks are in
    await waitFor(`the hostile stick to be taken\n${agentOut}`, () => agentOut.includes(`stick inserted (uuid="${uuid}"`));
    mkdirSync(inbox, { recursive: true });
    writeFileSync(join(inbox, 'web-1.2.3.edgepkg'), refusedPackage());
    const failed = join(inbox, 'failed');
    await waitFor(`the inbox package to be answered\n${agentOut}`, () => existsSync(failed) && readdirSync(failed).some((n) => n.endsWith('.json')));

    // the hostile stick got its report under free names, and a failure LED
    await waitFor(`the LED to show the failure\n${agentOut}`, () => led('trigger') === 'timer' && led('delay_on') === '100');
    await waitFor('the report on the stick', () => readFileSync(join(stick, 'caisson-result.txt'), 'utf8').startsWith('FAILED | evil'));
    assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep me', 'root wrote through a link on the stick');
    assert.deepEqual(readdirSync(outside).sort(), ['victim']);
    const written = readdirSync(reports).filter((n) => /-\d+\.json$/.test(n));
    assert.ok(written.length >= 1, readdirSync(reports).join(' '));
    // the hung stick is given up after stick_timeout_secs (4 s), whatever the other stick did
    await waitFor(`the hung stick to be given up\n${agentOut}`, () => agentOut.includes(`the stick does not answer; it is not used (uuid="${hungUuid}"`), 30_000);

    // 4. the log, on stderr (journald) and in caisson.log: one line per entry, nothing raw
    const fileLog = readFileSync(join(stateDir, 'logs', 'caisson.log'), 'latin1');
    for (const [what, text] of [['stderr', agentOut], ['caisson.log', fileLog]] as const) {
      for (const line of text.split('\n')) {
        assert.doesNotMatch(line, RAW_CONTROL, `${what}: raw control character in ${JSON.stringify(line)}`);
        assert.doesNotMatch(line, /^(\S+ info )?2026-01-01T00:00:00\.000Z info committed/, `${what}: a forged line`);
      }
      assert.ok(text.includes('\\x0a2026-01-01T00:00:00.000Z info committed') || text.includes('\\\\x0a2026'), `${what} names the package, escaped`);
    }

    // 5. SIGTERM is answered at once, hung stick or not
    const asked = Date.now();
    agent!.kill('SIGTERM');
    const exit = await Promise.race([agentExit!, sleep(30_000).then(() => 'timeout' as const)]);
    assert.deepEqual(exit, { code: 0, signal: null }, agentOut);
    assert.ok(Date.now() - asked < 15_000, `took ${Date.now() - asked} ms to stop`);
  });
});
