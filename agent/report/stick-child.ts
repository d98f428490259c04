// The stick's own process: does one job on a stick (list its packages, or write its
// reports) with the anchored calls of stick-fs.ts and answers once over IPC. The agent
// starts it per job and kills it when it does not answer in time (stick-io.ts), so a stick
// that hangs (a dead USB device, a filesystem that stops answering) blocks this process,
// never the agent. Imports only node: modules and stick-fs.ts, to start quickly.
import { closeDir, createNamedSet, listRegularFiles, openMountPoint, openSubdir, replaceFile, type DirHandle } from './stick-fs.js';
import type { StickJob, StickAnswer } from './stick-io.js';

function run(job: StickJob): StickAnswer {
  const root = openMountPoint(job.mountpoint);
  try {
    if (job.op === 'list') return { ok: true, names: listRegularFiles(root, job.suffix) };
    const names: string[] = [];
    if (job.reports.length) {
      let dir: DirHandle | undefined;
      try {
        dir = openSubdir(root, job.reportsDir, true);
        for (const r of job.reports) {
          names.push(
            createNamedSet(dir, r.base, [
              { ext: 'json', data: Buffer.from(r.json, 'utf8') },
              { ext: 'txt', data: Buffer.from(r.txt, 'utf8') },
            ]),
          );
        }
      } finally {
        if (dir) closeDir(dir);
      }
    }
    replaceFile(root, job.resultFile, Buffer.from(job.resultText, 'utf8'));
    return { ok: true, names };
  } finally {
    closeDir(root);
  }
}

process.once('message', (job: StickJob) => {
  let answer: StickAnswer;
  try {
    answer = run(job);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    answer = { ok: false, error: e?.message ?? String(err), code: e?.code };
  }
  process.send!(answer, () => process.disconnect());
});
