// The inbox folder: an operator (or a copy tool) drops `*.edgepkg` files in. A file is
// taken only when it is complete, because chokidar's awaitWriteFinish fired early on a
// copy that paused (DESIGN.md):
//  - it arrived by rename from `NAME.edgepkg.part` (same inode: the copy finished first), or
//  - its size and mtime stood still over `stableChecks` checks AND it is a whole tar.
// The inbox never waits silently for a file that cannot become a package: once stable, one
// whose first header is no tar header is handed on at once, and one that stays an
// incomplete tar for `incompleteTimeoutMs` is handed on then; the pipeline's reader refuses
// them (package.not_tar, package.truncated) and they end in failed/ with a report like
// any other failure. After the pipeline has answered, the file moves to processed/ or failed/ with its
// report (json + txt) beside it. The inbox itself is the durable queue: files still in it
// after a restart are found again by the initial scan.
import { watch, type FSWatcher } from 'chokidar';
import { lstatSync, mkdirSync, renameSync, existsSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { UpdateResult } from '../pipeline/types.js';
import { fsyncDir, writeFileAtomic } from '../atomic.js';
import { isSuccess, reportBaseName, reportJson, reportText } from '../report/format.js';
import { tarFileState, type TarFileState } from './tarcheck.js';
import type { AgentLog } from './log.js';

export const PACKAGE_SUFFIX = '.edgepkg';
export const PART_SUFFIX = '.edgepkg.part';
/** How long a stable but incomplete tar waits before it is failed (intake.incomplete_timeout_secs). */
export const DEFAULT_INCOMPLETE_TIMEOUT_MS = 600_000;

export interface InboxOptions {
  /** Written into every report. */
  device?: { id: string; public_key: string };
  dir: string;
  stableChecks: number;
  checkIntervalMs: number;
  /** A file unchanged this long that is still not a whole tar is handed on to fail. */
  incompleteTimeoutMs?: number;
  /** A complete package (or one that never will be, see above); the watcher will not offer it again until finish() or forget(). */
  onComplete: (path: string) => void;
  log: AgentLog;
}

interface Tracker {
  timer: NodeJS.Timeout;
  sizes: string[];
  /** When the file was first seen as it is now (size, mtime, inode). */
  unchangedSince: number;
  warned: boolean;
}

export class InboxWatcher {
  private watcher: FSWatcher | undefined;
  private readonly trackers = new Map<string, Tracker>();
  /** inode → name of `.part` files seen, to recognise a finished copy's rename. */
  private readonly partInodes = new Map<number, string>();
  private readonly taken = new Set<string>();
  private closed = false;
  private readonly dir: string;

  constructor(private readonly opts: InboxOptions) {
    this.dir = resolve(opts.dir);
  }

  get processedDir(): string {
    return join(this.dir, 'processed');
  }

  get failedDir(): string {
    return join(this.dir, 'failed');
  }

  async start(): Promise<void> {
    for (const d of [this.dir, this.processedDir, this.failedDir]) mkdirSync(d, { recursive: true, mode: 0o750 });
    const skip = new Set([this.processedDir, this.failedDir]);
    this.watcher = watch(this.dir, {
      depth: 0,
      alwaysStat: true,
      ignoreInitial: false,
      ignored: (p) => skip.has(p),
    });
    this.watcher.on('add', (p, st) => this.seen(p, st));
    this.watcher.on('change', (p, st) => this.seen(p, st));
    this.watcher.on('unlink', (p) => this.gone(p));
    this.watcher.on('error', (err) => this.opts.log.warn('inbox watcher error', { error: String(err) }));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.trackers.values()) clearTimeout(t.timer);
    this.trackers.clear();
    await this.watcher?.close();
  }

  /** Move a processed package and its report to processed/ or failed/. */
  finish(path: string, result: UpdateResult): { packagePath: string; reportBase: string } {
    const dest = isSuccess(result.outcome) ? this.processedDir : this.failedDir;
    let base = reportBaseName(result);
    if (existsSync(join(dest, `${base}${PACKAGE_SUFFIX}`)) || existsSync(join(dest, `${base}.json`))) {
      base = `${base}-${result.update_id.replace(/[^A-Za-z0-9]/g, '').slice(0, 12)}`;
    }
    const meta = { writtenAt: new Date().toISOString(), device: this.opts.device };
    writeFileAtomic(join(dest, `${base}.json`), reportJson(result, meta));
    writeFileAtomic(join(dest, `${base}.txt`), reportText(result, meta));
    const packagePath = join(dest, `${base}${PACKAGE_SUFFIX}`);
    try {
      renameSync(path, packagePath);
      fsyncDir(dest);
      fsyncDir(dirname(path));
    } catch (err) {
      this.opts.log.warn('could not move the inbox package', { file: path, error: String(err) });
    }
    this.taken.delete(path);
    return { packagePath, reportBase: join(dest, base) };
  }

  /** Let a taken file be offered again (e.g. it was not processed because the agent stopped). */
  forget(path: string): void {
    this.taken.delete(path);
  }

  private seen(path: string, st: Stats | undefined): void {
    if (this.closed || dirname(path) !== this.dir) return;
    const name = basename(path);
    if (name.startsWith('.')) return;
    if (name.endsWith(PART_SUFFIX)) {
      if (st) this.partInodes.set(st.ino, name);
      return;
    }
    if (!name.endsWith(PACKAGE_SUFFIX) || this.taken.has(path)) return;
    let now: Stats;
    try {
      now = lstatSync(path);
    } catch {
      return;
    }
    if (!now.isFile()) {
      this.opts.log.warn('inbox entry is not a regular file; ignored', { file: path });
      return;
    }
    const partName = this.partInodes.get(now.ino);
    if (partName === `${name}.part`) {
      // a rename is atomic: the copy under the .part name had finished
      this.partInodes.delete(now.ino);
      this.take(path, 'renamed from .part');
      return;
    }
    if (!this.trackers.has(path)) this.track(path);
  }

  private gone(path: string): void {
    const t = this.trackers.get(path);
    if (t) clearTimeout(t.timer);
    this.trackers.delete(path);
  }

  private track(path: string): void {
    const tracker: Tracker = { timer: setTimeout(() => void this.check(path), 0), sizes: [], unchangedSince: Date.now(), warned: false };
    this.trackers.set(path, tracker);
  }

  private async check(path: string): Promise<void> {
    const t = this.trackers.get(path);
    if (!t || this.closed) return;
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch {
      this.trackers.delete(path);
      return;
    }
    if (!st.isFile()) {
      this.trackers.delete(path);
      return;
    }
    const print = `${st.size}:${st.mtimeMs}:${st.ino}`;
    if (t.sizes.at(-1) !== print) t.unchangedSince = Date.now();
    t.sizes.push(print);
    if (t.sizes.length > this.opts.stableChecks) t.sizes.shift();
    const stable = t.sizes.length === this.opts.stableChecks && t.sizes.every((s) => s === t.sizes[0]);
    if (stable) {
      let state: TarFileState;
      try {
        state = await tarFileState(path);
      } catch {
        state = 'incomplete';
      }
      if (this.trackers.get(path) !== t || this.closed) return;
      if (this.decide(path, t, state)) return;
    }
    t.timer = setTimeout(() => void this.check(path), this.opts.checkIntervalMs);
  }

  /** A stable file: take it, or say once why it still waits. True when it was taken. */
  private decide(path: string, t: Tracker, state: TarFileState): boolean {
    const timeoutMs = this.opts.incompleteTimeoutMs ?? DEFAULT_INCOMPLETE_TIMEOUT_MS;
    const secs = (ms: number) => Math.round(ms / 1000);
    let why: string | undefined;
    if (state === 'whole') {
      why = 'size stable and a whole tar';
    } else if (state === 'not_tar') {
      why = 'size stable and not a tar';
      this.opts.log.warn('inbox file is not a tar; it will fail as package.not_tar', { file: path });
    } else if (Date.now() - t.unchangedSince >= timeoutMs) {
      why = `unchanged for ${secs(timeoutMs)} s and still not a whole tar`;
      this.opts.log.warn('inbox file stopped growing but never became a whole tar; it will fail as package.truncated', { file: path, waited_secs: secs(timeoutMs) });
    }
    if (why === undefined) {
      if (!t.warned) {
        t.warned = true;
        this.opts.log.warn(`inbox file has stopped growing but is not a whole tar yet; waiting up to ${secs(timeoutMs)} s`, { file: path });
      }
      return false;
    }
    this.trackers.delete(path);
    this.take(path, why);
    return true;
  }

  private take(path: string, why: string): void {
    if (this.taken.has(path)) return;
    this.taken.add(path);
    this.opts.log.info('inbox package complete', { file: path, why });
    this.opts.onComplete(path);
  }
}
