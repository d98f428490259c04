// The device test's "device": a Debian 12 system container with systemd as PID 1 and its
// own udevd, made from the base image scripts/device-image.sh builds once. It shares the
// host's /dev and /sys (so a loop device attached on the host raises udev events inside
// it) and the host's Docker engine through its socket (so the services it updates run on
// an engine the test can reach). docs/testing.md says why. Needs root.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ROOT } from './udev.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The flags measured to boot systemd as PID 1 under this engine (`--privileged` fails here). */
const SYSTEM_CONTAINER_FLAGS = [
  '--network', 'host',
  '--cap-add', 'ALL',
  '--cap-drop', 'SYS_RESOURCE',
  '--security-opt', 'seccomp=unconfined',
  '--security-opt', 'apparmor=unconfined',
  '--security-opt', 'systempaths=unconfined',
  '--device-cgroup-rule', 'a *:* rwm',
  '--tmpfs', '/run',
  '--tmpfs', '/run/lock',
  '-v', '/sys:/sys',
  '-v', '/dev:/dev',
  '-e', 'container=docker',
];

/** The base image's tag; built (debootstrap, ~90 s) only when the engine lacks it. */
export function deviceImage(suite: 'bookworm' | 'trixie' = 'bookworm'): string {
  const out = execFileSync('bash', [join(ROOT, 'scripts', 'device-image.sh'), suite], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return out.trim().split('\n').pop()!;
}

/**
 * `npm run package:deb` into outDir; returns the .deb's path. CAISSON_DEVICE_DEB names an
 * already built .deb to use instead (to rerun the test without packing again).
 */
export function buildDeb(outDir: string): string {
  const prebuilt = process.env.CAISSON_DEVICE_DEB;
  if (prebuilt) {
    const dest = join(outDir, basename(prebuilt));
    copyFileSync(prebuilt, dest);
    return dest;
  }
  const out = execFileSync('bash', [join(ROOT, 'scripts', 'package-deb.sh'), outDir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return out.trim().split('\n').pop()!;
}

export interface ExecResult {
  status: number;
  stdout: string;
  stderr: string;
}

export class Device {
  private constructor(readonly name: string) {}

  /** Boot a device container; mounts are [hostPath, containerPath] pairs (read-only). */
  static async boot(image: string, name: string, mounts: [string, string][]): Promise<Device> {
    spawnSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
    const volumes = mounts.flatMap(([h, c]) => ['-v', `${h}:${c}:ro`]);
    execFileSync(
      'docker',
      ['run', '-d', '--name', name, ...SYSTEM_CONTAINER_FLAGS, '-v', '/var/run/docker.sock:/run/docker.sock', ...volumes, image, '/lib/systemd/systemd'],
      { stdio: 'ignore' },
    );
    const device = new Device(name);
    let state = '';
    for (let i = 0; i < 300; i++) {
      state = device.exec('systemctl', 'is-system-running').stdout.trim();
      if (state === 'running' || state === 'degraded') {
        // systemd makes / shared at boot on a device, so that mounts made later (the
        // sticks) reach services with a mount namespace of their own (the hardened agent);
        // under a container manager it leaves that to the manager, and Docker's is private
        device.run('mount', '--make-rshared', '/');
        return device;
      }
      await sleep(100);
    }
    throw new Error(`the device did not boot (is-system-running: ${state})`);
  }

  exec(...args: string[]): ExecResult {
    return this.execWith({}, ...args);
  }

  execWith(o: { input?: string; cwd?: string }, ...args: string[]): ExecResult {
    const r = spawnSync('docker', ['exec', ...(o.input !== undefined ? ['-i'] : []), ...(o.cwd ? ['-w', o.cwd] : []), this.name, ...args], {
      encoding: 'utf8',
      input: o.input,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Run, throw with its output unless it exits 0; returns stdout. */
  run(...args: string[]): string {
    const r = this.exec(...args);
    if (r.status !== 0) throw new Error(`device: ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  writeFile(path: string, text: string): void {
    const r = this.execWith({ input: text }, 'sh', '-c', 'cat > "$1"', 'sh', path);
    if (r.status !== 0) throw new Error(`device: cannot write ${path}: ${r.stderr}`);
  }

  unitProperty(unit: string, property: string): string {
    return this.run('systemctl', 'show', '-p', property, '--value', unit).trim();
  }

  isActive(unit: string): string {
    return this.exec('systemctl', 'is-active', unit).stdout.trim();
  }

  journal(unit: string): string {
    return this.exec('journalctl', '--no-pager', '-o', 'cat', '-u', unit).stdout;
  }

  isMounted(dir: string): boolean {
    return this.exec('findmnt', '-rn', dir).status === 0;
  }

  /** Stop what holds host devices (the sticks' units), then remove the container. */
  remove(): void {
    this.exec('systemctl', 'stop', 'caisson-agent.service');
    this.exec('systemctl', 'stop', 'caisson-media@*.service');
    spawnSync('docker', ['rm', '-f', this.name], { stdio: 'ignore' });
  }
}
