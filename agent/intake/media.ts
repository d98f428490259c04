// Sticks. The udev helper (udev/caisson-media) mounts a stick under
// <media_root>/<filesystem UUID> and then drops an event file into
// <state_dir>/media-events/ (written to a temporary name, then renamed). A chokidar
// watcher on that plain folder sees the event; a watcher on the media root would not see
// a filesystem mounted onto it (DESIGN.md). At start the agent also looks at
// /proc/self/mountinfo for sticks that were mounted while it was not running.
import { watch, type FSWatcher } from 'chokidar';
import { lstatSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { readMounts } from './mounts.js';
import type { AgentLog } from './log.js';
import { PACKAGE_SUFFIX } from './inbox.js';
import { runStickJob } from '../report/stick-io.js';

export const UUID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
const KERNEL_PATTERN = /^[a-z0-9]{1,32}$/;
const EVENT_MAGIC = 'caisson-media-event 1';

export interface MediaEvent {
  action: 'add' | 'remove';
  uuid: string;
  /** Always <media_root>/<uuid>: computed here, never taken from the event file. */
  mountpoint: string;
  kernel?: string;
  /** Helper's clock in ns when it wrote the event; orders events of one stick. */
  seq: bigint;
}

export function parseMediaEvent(text: string, mediaRoot: string): MediaEvent | undefined {
  const lines = text.split('\n');
  if (lines[0] !== EVENT_MAGIC) return undefined;
  const kv = new Map<string, string>();
  for (const line of lines.slice(1)) {
    if (!line) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) return undefined;
    kv.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const action = kv.get('action');
  const uuid = kv.get('uuid') ?? '';
  const kernel = kv.get('kernel');
  const seq = kv.get('seq') ?? '0';
  if (action !== 'add' && action !== 'remove') return undefined;
  if (!UUID_PATTERN.test(uuid)) return undefined;
  if (kernel !== undefined && !KERNEL_PATTERN.test(kernel)) return undefined;
  if (!/^[0-9]{1,30}$/.test(seq)) return undefined;
  return { action, uuid, mountpoint: join(resolve(mediaRoot), uuid), kernel, seq: BigInt(seq) };
}

export interface MediaWatcherOptions {
  mediaRoot: string;
  eventsDir: string;
  onEvent: (event: MediaEvent) => void;
  log: AgentLog;
}

export class MediaWatcher {
  private watcher: FSWatcher | undefined;
  private readonly lastSeq = new Map<string, bigint>();
  private readonly eventsDir: string;
  private readonly mediaRoot: string;

  constructor(private readonly opts: MediaWatcherOptions) {
    this.eventsDir = resolve(opts.eventsDir);
    this.mediaRoot = resolve(opts.mediaRoot);
  }

  async start(): Promise<void> {
    mkdirSync(this.eventsDir, { recursive: true, mode: 0o750 });
    this.watcher = watch(this.eventsDir, { depth: 0, ignoreInitial: false });
    this.watcher.on('add', (p) => this.handleFile(p));
    this.watcher.on('error', (err) => this.opts.log.warn('media event watcher error', { error: String(err) }));
    await new Promise<void>((r) => this.watcher!.once('ready', () => r()));
  }

  async close(): Promise<void> {
    await this.watcher?.close();
    this.watcher = undefined;
  }

  /** Sticks already mounted under the media root (e.g. inserted while the agent was down). */
  scanMounted(): MediaEvent[] {
    const out: MediaEvent[] = [];
    for (const m of readMounts()) {
      if (dirname(m.mountPoint) !== this.mediaRoot) continue;
      const uuid = basename(m.mountPoint);
      if (!UUID_PATTERN.test(uuid)) continue;
      out.push({ action: 'add', uuid, mountpoint: m.mountPoint, seq: 0n });
    }
    return out;
  }

  private handleFile(path: string): void {
    const name = basename(path);
    if (dirname(path) !== this.eventsDir || !name.endsWith('.event') || name.startsWith('.')) return;
    let text = '';
    try {
      const st = lstatSync(path);
      if (st.isFile() && st.size < 4096) text = readFileSync(path, 'utf8');
    } catch {
      return; // already handled and removed
    }
    rmSync(path, { force: true });
    const event = parseMediaEvent(text, this.mediaRoot);
    if (!event) {
      this.opts.log.warn('ignored a malformed media event file', { file: name });
      return;
    }
    const last = this.lastSeq.get(event.uuid);
    if (last !== undefined && event.seq !== 0n && event.seq < last) {
      this.opts.log.info('ignored an out-of-date media event', { uuid: event.uuid, action: event.action });
      return;
    }
    this.lastSeq.set(event.uuid, event.seq);
    this.opts.onEvent(event);
  }
}

/**
 * Top-level `*.edgepkg` regular files on a stick, sorted by name (no links, no hidden
 * files, nothing opened). Listed by the stick's own process: rejects with a timeout when
 * the stick does not answer within `timeoutMs`.
 */
export async function listStickPackages(mountpoint: string, timeoutMs?: number, signal?: AbortSignal): Promise<string[]> {
  const names = await runStickJob({ op: 'list', mountpoint, suffix: PACKAGE_SUFFIX }, timeoutMs, signal);
  return names.map((n) => join(mountpoint, n));
}
