// The udev helper against crafted ext4 sticks, with the real systemd-udevd and rule: the
// mount options a stick cannot choose (nosymfollow, errors=remount-ro over its own
// errors=panic, nodev/nosuid/noexec), and two partitions with one UUID never stacking on
// one mount point. Needs root (udev, losetup, mount). No agent, no Docker.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HELPER, TEST_FS_LABEL, setupUdev, type UdevHarness } from '../support/udev.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface MountLine {
  mountOptions: string[];
  superOptions: string[];
  source: string;
}

function mountsAt(dir: string): MountLine[] {
  const out: MountLine[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4] !== dir) continue;
    const dash = f.indexOf('-');
    out.push({ mountOptions: f[5]!.split(','), superOptions: (f[dash + 3] ?? '').split(','), source: f[dash + 2]! });
  }
  return out;
}

/** An ext4 image with `content` (a folder, links kept as links) at its top level. */
function ext4Image(path: string, content: string, label: string, uuid: string): void {
  rmSync(path, { force: true });
  execFileSync('truncate', ['-s', '16M', path]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', label, '-U', uuid, '-E', 'root_owner=0:0', '-d', content, path], { stdio: 'pipe' });
}

describe('e2e: the udev helper mounts crafted sticks safely', function () {
  this.timeout(180_000);
  let work: string;
  let mediaRoot: string;
  let stateDir: string;
  let udev: UdevHarness | undefined;
  const loops: string[] = [];

  const attach = (image: string) => {
    const dev = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
    loops.push(dev);
    return dev;
  };

  before(() => {
    assert.equal(process.getuid?.(), 0, 'needs root (udev, mount, losetup)');
    work = mkdtempSync(join(tmpdir(), 'caisson-udev-mount-'));
    mediaRoot = join(work, 'media');
    stateDir = join(work, 'state');
    mkdirSync(mediaRoot, { recursive: true });
    mkdirSync(stateDir, { recursive: true });
    udev = setupUdev({ mediaRoot, stateDir, tag: `mount-${process.pid}` });
  });

  after(() => {
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const mp = line.split(' ')[4];
      if (mp?.startsWith(mediaRoot + '/')) spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
    }
    for (const dev of loops) spawnSync('losetup', ['-d', dev], { stdio: 'ignore' });
    udev?.teardown();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('mounts with nosymfollow, nodev, nosuid, noexec and errors=remount-ro over the stick\'s errors=panic', async () => {
    const outside = join(work, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret'), 'x');
    const content = join(work, 'content-a');
    mkdirSync(content);
    symlinkSync(outside, join(content, 'caisson-reports'));
    const uuid = randomUUID();
    const image = join(work, 'a.img');
    ext4Image(image, content, TEST_FS_LABEL, uuid);
    execFileSync('tune2fs', ['-e', 'panic', image], { stdio: 'ignore' });
    assert.match(execFileSync('dumpe2fs', ['-h', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }), /Errors behavior:\s+Panic/);
    const dev = attach(image);
    const mp = join(mediaRoot, uuid);
    for (let i = 0; i < 300 && mountsAt(mp).length === 0; i++) await sleep(100);
    const [m] = mountsAt(mp);
    assert.ok(m, 'udev mounted the stick');
    assert.equal(m.source, dev);
    for (const o of ['nosuid', 'nodev', 'noexec', 'nosymfollow']) assert.ok(m.mountOptions.includes(o), `${o} in ${m.mountOptions.join(',')}`);
    assert.ok(m.superOptions.includes('errors=remount-ro'), `errors=remount-ro in ${m.superOptions.join(',')}`);
    // the link on the stick is not followed by anyone, root included
    assert.throws(() => readdirSync(join(mp, 'caisson-reports')), /ELOOP/);
    spawnSync('losetup', ['-d', dev], { stdio: 'ignore' });
    spawnSync('umount', [mp], { stdio: 'ignore' });
  });

  it('two partitions with the same UUID arriving together: one mount, never two stacked on one mount point', async () => {
    const uuid = randomUUID();
    const content = join(work, 'content-b');
    mkdirSync(content);
    writeFileSync(join(content, 'x.edgepkg'), 'x');
    // a label the loop test rule ignores: the helper is started by hand, both at once
    const devs = ['b1', 'b2'].map((n) => {
      const image = join(work, `${n}.img`);
      ext4Image(image, content, 'CAISSONRACE', uuid);
      return attach(image).replace('/dev/', '');
    });
    const mp = join(mediaRoot, uuid);
    const env = { ...process.env, ACTION: 'add', ID_FS_USAGE: 'filesystem', ID_FS_TYPE: 'ext4', ID_FS_UUID: uuid };
    const run = (args: string[]) =>
      new Promise<number | null>((resolve) => {
        const c = spawn(HELPER, ['--media-root', mediaRoot, '--state-dir', stateDir, ...args], { env, stdio: 'ignore' });
        c.once('exit', (code) => resolve(code));
      });
    for (let round = 0; round < 5; round++) {
      await Promise.all(devs.map((d) => run(['add', d])));
      const mounts = mountsAt(mp);
      assert.equal(mounts.length, 1, `round ${round}: ${mounts.length} mounts at one mount point (${mounts.map((m) => m.source).join(' ')})`);
      await Promise.all(devs.map((d) => run(['remove', d])));
      assert.equal(mountsAt(mp).length, 0, `round ${round}: left mounted`);
    }
  });
});
