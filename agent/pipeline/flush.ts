// Flush the engine's freshly imported layers to disk before the switch. Right after a large
// import the kernel still holds gigabytes of dirty pages; left alone, writing them back
// slows the engine's own stop/create/start, i.e. the downtime. Flushing first moves that
// cost before the old container is stopped. Best effort: a failure only costs downtime.
import { execFile } from 'node:child_process';
import type Dockerode from 'dockerode';
import { engineDataRoot } from '../runtime/docker-client.js';

const FLUSH_TIMEOUT_MS = 120_000;

export async function flushEngineWrites(docker: Dockerode): Promise<void> {
  const root = await engineDataRoot(docker).catch(() => undefined);
  // `sync -f PATH` = syncfs(2) of the filesystem holding the engine's data, nothing else
  const args = root ? ['-f', root] : [];
  await new Promise<void>((resolve) => {
    execFile('sync', args, { timeout: FLUSH_TIMEOUT_MS }, () => resolve());
  });
}
