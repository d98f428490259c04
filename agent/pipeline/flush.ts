// Flush the engine's freshly imported layers to disk before the switch. Right after a large
// import the kernel still holds gigabytes of dirty pages; left alone, writing them back
// slows the engine's own stop/create/start, i.e. the downtime. Flushing first moves that
// cost before the old container is stopped. Most of it is paid while the engine is still
// unpacking (flushInBackground): the engine is busy with the CPU then and the disk is idle.
// Best effort: a failure only costs downtime.
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type Dockerode from 'dockerode';
import { engineDataRoot } from '../runtime/docker-client.js';

const FLUSH_TIMEOUT_MS = 120_000;
/** Pause between background flushes, so they never take the disk from anything else for long. */
const BACKGROUND_PAUSE_MS = 250;

export async function flushEngineWrites(docker: Dockerode): Promise<void> {
  await syncFilesystemOf(await engineDataRoot(docker).catch(() => undefined));
}

/** Flush the engine's filesystem again and again until stop(), which waits for the last flush. */
export function flushInBackground(docker: Dockerode): { stop: () => Promise<void> } {
  let stopped = false;
  const loop = (async () => {
    const root = await engineDataRoot(docker).catch(() => undefined);
    while (!stopped && root) {
      await syncFilesystemOf(root);
      if (!stopped) await sleep(BACKGROUND_PAUSE_MS);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/**
 * `sync -f PATH` = syncfs(2) of the filesystem holding PATH, nothing else. Without a data
 * root (the engine did not say) nothing is flushed: a plain `sync` would also wait for
 * every mounted stick.
 */
function syncFilesystemOf(root: string | undefined): Promise<void> {
  if (!root) return Promise.resolve();
  return new Promise<void>((resolve) => {
    execFile('sync', ['-f', root], { timeout: FLUSH_TIMEOUT_MS }, () => resolve());
  });
}
