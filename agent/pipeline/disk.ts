// Refuse up front when the disk cannot hold the staging copy and the imported image.
import { lstatSync, statfsSync, mkdirSync } from 'node:fs';
import { CaissonError } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { formatBytes } from '../log/progress.js';

/** Headroom kept free on top of what staging and import need. */
export const DISK_MARGIN_BYTES = 64 * 1024 * 1024;

export async function checkDiskSpace(engine: Pick<Engine, 'dataRoot'>, stateDir: string, packagePath: string): Promise<void> {
  let size: number;
  try {
    size = lstatSync(packagePath).size;
  } catch {
    return; // the reader reports a missing or unreadable package with its own code
  }
  mkdirSync(stateDir, { recursive: true });
  const dockerRoot = await engine.dataRoot();
  const state = statfsSync(stateDir);
  const needs: { where: string; dev: bigint | number; free: number; need: number }[] = [
    { where: stateDir, dev: devOf(stateDir), free: state.bavail * state.bsize, need: size + DISK_MARGIN_BYTES },
  ];
  if (dockerRoot) {
    try {
      const d = statfsSync(dockerRoot);
      const dev = devOf(dockerRoot);
      if (dev === needs[0]!.dev) needs[0]!.need += size; // same filesystem: staging and image both land there
      else needs.push({ where: dockerRoot, dev, free: d.bavail * d.bsize, need: size + DISK_MARGIN_BYTES });
    } catch {
      // the engine's data root is not visible from here (remote or namespaced engine): check the state dir only
    }
  }
  for (const n of needs) {
    if (n.free < n.need) {
      throw new CaissonError('disk.insufficient', `${n.where} has ${formatBytes(n.free)} free; this package needs ${formatBytes(n.need)}`);
    }
  }
}

function devOf(path: string): number {
  return lstatSync(path).dev;
}
