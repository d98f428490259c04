// Shared pieces for the agent's unit tests (intake, report, store): a small fake pipeline, package-shaped tar
// files, tmpfs "sticks" (these tests run as root, like the agent) and event waiting.
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventEmitter } from 'node:events';
import { tarEnd, tarEntry } from '../../agent/package/tar-writer.js';
import type { UpdateRequest, UpdateResult } from '../../agent/pipeline/types.js';
import { openDatabase, type Db } from '../../agent/store/db.js';
import type { AgentPipeline } from '../../agent/intake/agent.js';
import type { AgentLog } from '../../agent/intake/log.js';
import { parseAgentConfig, type AgentConfig } from '../../agent/config/agent.js';

export function tempDir(prefix = 'caisson-agent-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A tar shaped like an .edgepkg: manifest.toml, then image.tar (random bytes, then zeros). */
export function packageBytes(version: string, opts: { randomBytes?: number; zeroBytes?: number } = {}): Buffer {
  const manifest = Buffer.from(`format_version = 1\npackage_type = "service"\npackage_version = "${version}"\n`);
  const image = Buffer.concat([randomBytes(opts.randomBytes ?? 4096), Buffer.alloc(opts.zeroBytes ?? 0)]);
  return Buffer.concat([tarEntry({ name: 'manifest.toml' }, manifest), tarEntry({ name: 'image.tar' }, image), tarEnd()]);
}

export function writePackage(path: string, version: string, opts?: { randomBytes?: number; zeroBytes?: number }): Buffer {
  const bytes = packageBytes(version, opts);
  writeFileSync(path, bytes);
  return bytes;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * A stand-in for the real pipeline where a real one adds nothing: the agent's queueing,
 * reports and LED only depend on the UpdateResult it gets back. It keeps the pipeline's
 * once-only rule (same package identity committed before → already_installed), fails any
 * file whose name contains "bad", and records how many runs overlapped.
 */
export class FakePipeline implements AgentPipeline {
  readonly db: Db;
  readonly runs: UpdateRequest[] = [];
  readonly committed = new Set<string>();
  recovered: UpdateResult[] = [];
  delayMs = 50;
  throwOn: RegExp | undefined;
  private active = 0;
  maxActive = 0;

  constructor(stateDir: string) {
    this.db = openDatabase(stateDir);
  }

  async recover(): Promise<UpdateResult[]> {
    return this.recovered;
  }

  async run(req: UpdateRequest): Promise<UpdateResult> {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      this.runs.push(req);
      const started_at = new Date().toISOString();
      await new Promise((r) => setTimeout(r, this.delayMs));
      if (this.throwOn?.test(req.packagePath)) throw new Error('engine exploded');
      const sha = sha256(readFileSync(req.packagePath));
      const version = /(\d+\.\d+\.\d+)/.exec(req.packagePath)?.[1] ?? '9.9.9';
      const base = {
        update_id: `fake-${this.runs.length}`,
        source: req.source,
        package_file: req.packagePath,
        package_id: sha,
        package_version: version,
        service: 'frontend',
        from_version: '1.0.0',
        to_version: version,
        started_at,
        finished_at: new Date().toISOString(),
        steps: [{ state: 'received', at: started_at }],
      };
      if (/bad/.test(req.packagePath)) {
        return {
          ...base,
          outcome: 'rolled_back',
          error: { code: 'health.timeout', message: 'not healthy within 30 s', next: 'Report this to the vendor.' },
        };
      }
      if (this.committed.has(sha)) return { ...base, outcome: 'already_installed' };
      this.committed.add(sha);
      return { ...base, outcome: 'committed' };
    } finally {
      this.active--;
    }
  }

  close(): void {
    this.db.close();
  }
}

export function testConfig(root: string, extra = ''): AgentConfig {
  const cfg = parseAgentConfig(
    [
      `media_root = "${join(root, 'media')}"`,
      `inbox = "${join(root, 'inbox')}"`,
      `state_dir = "${join(root, 'state')}"`,
      `[led]`,
      `paths = ["${join(root, 'led')}"]`,
      `[intake]`,
      `stable_checks = 3`,
      `check_interval_secs = 0.1`,
      extra,
    ].join('\n'),
    'test agent.toml',
  );
  mkdirSync(join(root, 'led'), { recursive: true });
  mkdirSync(join(root, 'media'), { recursive: true });
  return cfg;
}

export function collectLog(): AgentLog & { lines: { level: string; message: string; meta?: Record<string, unknown> }[] } {
  const lines: { level: string; message: string; meta?: Record<string, unknown> }[] = [];
  return {
    lines,
    info: (message, meta) => void lines.push({ level: 'info', message, meta }),
    warn: (message, meta) => void lines.push({ level: 'warn', message, meta }),
    error: (message, meta) => void lines.push({ level: 'error', message, meta }),
  };
}

export function once<T>(emitter: EventEmitter, event: string, filter: (v: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve) => {
    const on = (v: T) => {
      if (!filter(v)) return;
      emitter.off(event, on);
      resolve(v);
    };
    emitter.on(event, on);
  });
}

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- tmpfs sticks -------------------------------------------------------------------------

export function mountStick(dir: string, opts: { readOnly?: boolean } = {}): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=8m,nosuid,nodev,noexec${opts.readOnly ? ',ro' : ''}`, 'caisson-test-stick', dir]);
}

export function remount(dir: string, mode: 'ro' | 'rw'): void {
  execFileSync('mount', ['-o', `remount,${mode}`, dir]);
}

export function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'ignore' });
  } catch {
    // not mounted
  }
}

let eventCounter = 0;

/** Drop an event file the way udev/caisson-media does (temporary name, then rename). */
export function mediaEvent(eventsDir: string, action: 'add' | 'remove', uuid: string): void {
  mkdirSync(eventsDir, { recursive: true });
  const seq = BigInt(Date.now()) * 1_000_000n + BigInt(++eventCounter);
  const tmp = join(eventsDir, `.tmp.${process.pid}`);
  writeFileSync(tmp, `caisson-media-event 1\naction=${action}\nkernel=test0\nuuid=${uuid}\nseq=${seq}\n`);
  renameSync(tmp, join(eventsDir, `${seq}.${action}.event`));
}

export function readLed(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of ['trigger', 'brightness', 'delay_on', 'delay_off']) {
    try {
      out[f] = readFileSync(join(dir, f), 'utf8').trim();
    } catch {
      // not written yet
    }
  }
  return out;
}

export function removeTree(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
