// End-to-end support: a real systemd-udevd with the project's rules, and ext4 image files
// attached with losetup as "sticks". The loop-device switch (udev/99-caisson-loop-test.rules)
// only matches filesystems labelled CAISSONTEST*, so other loop devices are never touched;
// the copy installed here matches only this process's label (TEST_FS_LABEL), so that test
// processes side by side (scripts/test.sh's lanes, the device test's own udevd, which sees
// the same kernel events) never mount each other's sticks.
// Everything here needs root.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const HELPER = join(ROOT, 'udev', 'caisson-media');
const INSTALLED_HELPER = '/usr/lib/caisson/caisson-media';
const RULES_DIR = '/run/udev/rules.d';
const UDEVD = '/lib/systemd/systemd-udevd';

/** This process's stick label: CAISSONTEST and the pid in base 36 (ext4 labels hold 16 bytes). */
export const TEST_FS_LABEL = `CAISSONTEST${process.pid.toString(36).toUpperCase()}`;

/** udev/99-caisson-loop-test.rules narrowed to sticks labelled `label`, exactly. */
export function loopTestRule(label = TEST_FS_LABEL): string {
  const text = readFileSync(join(ROOT, 'udev', '99-caisson-loop-test.rules'), 'utf8');
  const match = 'ENV{ID_FS_LABEL}!="CAISSONTEST*"';
  if (!text.includes(match)) throw new Error(`udev/99-caisson-loop-test.rules no longer says ${match}`);
  return text.split(match).join(`ENV{ID_FS_LABEL}!="${label}"`);
}

function udevdAnswers(): boolean {
  return spawnSync('udevadm', ['control', '--ping', '--timeout=2'], { stdio: 'ignore' }).status === 0;
}

function udevdPids(): number[] {
  const r = spawnSync('pgrep', ['-x', 'systemd-udevd'], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').filter(Boolean).map(Number);
}

export interface UdevHarness {
  /** Rule files this harness installed. */
  rules: string[];
  /** PID of the udevd this harness started, if it had to start one. */
  startedPid?: number;
  teardown(): void;
}

/**
 * Make sure systemd-udevd runs (start it when none answers; teardown stops only that one),
 * install the project's rule and the loop test rule with the helper path (and its
 * --media-root/--state-dir) substituted, and reload the rules.
 */
export function setupUdev(o: { mediaRoot: string; stateDir: string; tag: string }): UdevHarness {
  let startedPid: number | undefined;
  if (!udevdAnswers()) {
    const before = new Set(udevdPids());
    execFileSync(UDEVD, ['--daemon'], { stdio: 'ignore' });
    for (let i = 0; i < 50 && !udevdAnswers(); i++) execFileSync('sleep', ['0.1']);
    if (!udevdAnswers()) throw new Error('systemd-udevd did not start');
    startedPid = udevdPids().find((p) => !before.has(p));
  }
  mkdirSync(RULES_DIR, { recursive: true });
  const command = `${HELPER} --media-root ${o.mediaRoot} --state-dir ${o.stateDir}`;
  if (/\s/.test(o.mediaRoot + o.stateDir + HELPER) || /"/.test(command)) throw new Error('paths for udev rules must not hold spaces or quotes');
  const rules: string[] = [];
  for (const [rule, name] of [
    [readFileSync(join(ROOT, 'udev', '99-caisson.rules'), 'utf8'), `99-caisson-${o.tag}.rules`],
    [loopTestRule(), `99-caisson-${o.tag}-loop-test.rules`],
  ] as const) {
    const text = rule.split(INSTALLED_HELPER).join(command);
    const dest = join(RULES_DIR, name);
    writeFileSync(dest, text);
    rules.push(dest);
  }
  execFileSync('udevadm', ['control', '--reload']);
  return {
    rules,
    startedPid,
    teardown() {
      for (const r of rules) rmSync(r, { force: true });
      spawnSync('udevadm', ['control', '--reload'], { stdio: 'ignore' });
      if (startedPid) {
        try {
          process.kill(startedPid, 'SIGTERM');
        } catch {
          // already gone
        }
        // wait until it is gone (or a zombie nobody reaped), so a next suite starts its own
        for (let i = 0; i < 100 && running(startedPid); i++) execFileSync('sleep', ['0.05']);
      }
    },
  };
}

/** An ext4 image file used as a USB stick through a loop device. */
export class LoopStick {
  readonly uuid: string;
  device: string | undefined;

  private constructor(
    readonly image: string,
    uuid: string,
  ) {
    this.uuid = uuid;
  }

  /** A fresh ext4 image (label CAISSONTEST) holding the given files at its top level. */
  static create(image: string, files: string[], sizeMiB = 96): LoopStick {
    const uuid = randomUUID();
    const content = mkdtempSync(join(tmpdir(), 'caisson-stick-content-'));
    try {
      for (const f of files) copyFileSync(f, join(content, basename(f)));
      rmSync(image, { force: true });
      execFileSync('truncate', ['-s', `${sizeMiB}M`, image]);
      execFileSync('mkfs.ext4', ['-q', '-F', '-L', TEST_FS_LABEL, '-U', uuid, '-E', 'root_owner=0:0', '-d', content, image], { stdio: 'pipe' });
    } finally {
      rmSync(content, { recursive: true, force: true });
    }
    return new LoopStick(image, uuid);
  }

  mountpoint(mediaRoot: string): string {
    return join(mediaRoot, this.uuid);
  }

  /** Plug in: attach the image (udev sees a loop device with a filesystem: "change"). */
  insert(): string {
    this.device = execFileSync('losetup', ['-f', '--show', this.image], { encoding: 'utf8' }).trim();
    return this.device;
  }

  /**
   * Pull out: detach (only marks the busy device for auto-clear) and unmount, the way the
   * kernel lets go of a stick; the loop device then raises "change" without a filesystem.
   */
  pull(mediaRoot: string): void {
    if (this.device) spawnSync('losetup', ['-d', this.device], { stdio: 'ignore' });
    const mp = this.mountpoint(mediaRoot);
    if (isMounted(mp)) spawnSync('umount', [mp], { stdio: 'ignore' });
    this.device = undefined;
  }

  /** Read a file from the detached image itself (no mount, so udev is not involved). */
  readFile(path: string): string {
    return execFileSync('debugfs', ['-R', `cat /${path}`, this.image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  }

  /** Names in a folder of the detached image. */
  list(dir: string): string[] {
    const out = execFileSync('debugfs', ['-R', `ls -p /${dir}`, this.image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    // ls -p: /inode/mode/uid/gid/name/size/
    return out
      .split('\n')
      .map((l) => l.split('/')[5] ?? '')
      .filter((n) => n && n !== '.' && n !== '..');
  }

  /** Leave nothing attached or mounted (test cleanup). */
  cleanup(mediaRoot: string): void {
    const attached = spawnSync('losetup', ['-j', this.image, '-O', 'NAME', '-n'], { encoding: 'utf8' }).stdout ?? '';
    const mp = this.mountpoint(mediaRoot);
    if (isMounted(mp)) spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
    for (const dev of attached.split('\n').map((s) => s.trim()).filter(Boolean)) spawnSync('losetup', ['-d', dev], { stdio: 'ignore' });
    if (existsSync(this.image)) rmSync(this.image, { force: true });
  }
}

export function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);
}

function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
