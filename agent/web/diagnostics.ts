// The diagnostics bundle support staff download from the page: a .tar.gz of the device's
// identity (public parts only), service status, update history with every step, the
// agent's log files and the inbox reports. Never the device key, the password hash,
// trusted keys, the service catalog or container environments: only files this module
// names are copied, into a fresh temporary folder that is removed after sending.
import { copyFileSync, lstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { create as createTar } from 'tar';

/** Newest inbox reports included, per folder. */
const MAX_REPORTS = 200;
/** A log or report bigger than this is left out (the logger rotates at 5 MiB). */
const MAX_FILE_BYTES = 8 * 1024 * 1024;

export interface DiagnosticsInput {
  stateDir: string;
  inbox: string;
  /** JSON documents to include by name (device.json, status.json, history.json, …). */
  documents: Record<string, unknown>;
}

/** Build the bundle; the stream removes its temporary folder when it ends or fails. */
export function diagnosticsBundle(input: DiagnosticsInput): Readable {
  const dir = mkdtempSync(join(tmpdir(), 'caisson-diag-'));
  const root = join(dir, 'caisson-diagnostics');
  try {
    mkdirSync(root);
    for (const [name, value] of Object.entries(input.documents)) {
      writeFileSync(join(root, name), JSON.stringify(value, null, 2) + '\n');
    }
    copyMatching(join(input.stateDir, 'logs'), join(root, 'logs'), (n) => /^caisson\d*\.log$/.test(n), 10);
    for (const sub of ['processed', 'failed']) {
      copyMatching(join(input.inbox, sub), join(root, 'reports', sub), (n) => n.endsWith('.json') || n.endsWith('.txt'), MAX_REPORTS);
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const stream = createTar({ gzip: true, cwd: dir, portable: true }, ['caisson-diagnostics']) as unknown as Readable;
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    rmSync(dir, { recursive: true, force: true });
  };
  stream.once('end', cleanup);
  stream.once('error', cleanup);
  stream.once('close', cleanup);
  return stream;
}

/** Copy the newest regular files whose names match, at most `max`, each within the size cap. */
function copyMatching(from: string, to: string, match: (name: string) => boolean, max: number): void {
  let names: string[];
  try {
    names = readdirSync(from);
  } catch {
    return;
  }
  const files = names
    .filter(match)
    .map((n) => {
      try {
        const st = lstatSync(join(from, n), { throwIfNoEntry: false });
        return st && st.isFile() && st.size <= MAX_FILE_BYTES ? { n, t: st.mtimeMs } : undefined;
      } catch {
        return undefined;
      }
    })
    .filter((f): f is { n: string; t: number } => f !== undefined)
    .sort((a, b) => b.t - a.t)
    .slice(0, max);
  if (!files.length) return;
  mkdirSync(to, { recursive: true });
  for (const f of files) copyFileSync(join(from, f.n), join(to, f.n));
}
