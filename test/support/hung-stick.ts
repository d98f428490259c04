// A stick that stops answering, for real: a FUSE filesystem mounted from a /dev/fuse handle
// that nobody serves. Every access to it sleeps in the kernel until the handle is closed
// (then it fails with ENOTCONN), the way a dead USB device or a wedged filesystem does.
// Needs root and /dev/fuse. Never touch the folder from the test process itself.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';

export interface HungStick {
  dir: string;
  /** Close the handle (pending calls fail), unmount, leave nothing behind. */
  release(): Promise<void>;
}

export function fuseAvailable(): boolean {
  try {
    return readFileSync('/proc/filesystems', 'utf8').includes('\tfuse\n') && spawnSync('test', ['-c', '/dev/fuse']).status === 0;
  } catch {
    return false;
  }
}

function mounted(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);
}

export async function mountHungStick(dir: string): Promise<HungStick> {
  mkdirSync(dir, { recursive: true });
  // the shell opens /dev/fuse as fd 3, mounts with it, then sleeps holding it open
  const holder: ChildProcess = spawn(
    'sh',
    ['-c', 'exec 3<>/dev/fuse && mount -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 caisson-hung-stick "$1" && exec sleep 3600', 'sh', dir],
    { stdio: 'ignore' },
  );
  const end = Date.now() + 10_000;
  while (!mounted(dir)) {
    if (holder.exitCode !== null || Date.now() > end) throw new Error('could not mount the hung FUSE stick');
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    dir,
    async release() {
      if (holder.exitCode === null && holder.signalCode === null) {
        const gone = new Promise((r) => holder.once('exit', r));
        holder.kill('SIGKILL');
        await gone;
      }
      spawnSync('umount', ['-l', dir], { stdio: 'ignore' });
    },
  };
}
