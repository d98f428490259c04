// Reports on the stick a package came from. Every outcome is first saved as "pending"
// for that stick (by filesystem UUID) in the state database, then written to the stick;
// only a complete, flushed write clears it. A read-only, full or already removed stick
// keeps its reports pending until a stick with the same UUID is inserted again.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../store/db.js';
import type { UpdateResult } from '../pipeline/types.js';
import { ensureDirDurable, writeFileAtomic } from './atomic.js';
import { isSuccess, reportBaseName, reportJson, reportText, resultFileText } from './format.js';

export interface StickReportOptions {
  resultFileName: string;
  reportsDirName: string;
  /** True when `dir` is the stick itself (a mount point), not the empty folder left behind. */
  isMounted: (dir: string) => boolean;
  /** Written into every report (docs/agent.md, "The device's identity"). */
  device?: { id: string; public_key: string };
}

export interface Delivery {
  /** Everything pending for this stick, oldest first (this insertion's results last). */
  results: UpdateResult[];
  written: boolean;
  error?: unknown;
}

export const NO_PACKAGE_NOTE = 'NO PACKAGE | no *.edgepkg file at the top level of this stick | Copy the package file to the top folder of the stick and insert it again.';

export class StickReports {
  constructor(
    private readonly db: Db,
    private readonly opts: StickReportOptions,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS agent_stick_reports (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      medium_uuid TEXT NOT NULL,
      update_id TEXT NOT NULL,
      result TEXT NOT NULL,            -- UpdateResult as JSON
      created_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS agent_stick_reports_uuid ON agent_stick_reports (medium_uuid, id);`);
  }

  /** Save an outcome as pending for the stick (durable before anything is written to it). */
  record(mediumUuid: string, result: UpdateResult): void {
    this.db
      .prepare('INSERT INTO agent_stick_reports (medium_uuid, update_id, result, created_at) VALUES (?, ?, ?, ?)')
      .run(mediumUuid, result.update_id, JSON.stringify(result), new Date().toISOString());
  }

  pending(mediumUuid: string): UpdateResult[] {
    return this.pendingRows(mediumUuid).map((r) => r.result);
  }

  pendingCount(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM agent_stick_reports').get() as { n: number }).n;
  }

  /**
   * Write every pending report for this stick, then caisson-result.txt (one line per
   * package, plus `note` when given), each atomically and flushed. Clears what was written.
   */
  deliver(mediumUuid: string, mountpoint: string, note?: string): Delivery {
    const rows = this.pendingRows(mediumUuid);
    const results = rows.map((r) => r.result);
    if (!this.opts.isMounted(mountpoint)) {
      return { results, written: false, error: new Error(`${mountpoint} is not mounted (stick removed)`) };
    }
    try {
      const writtenAt = new Date().toISOString();
      if (rows.length) {
        const reportsDir = join(mountpoint, this.opts.reportsDirName);
        ensureDirDurable(reportsDir);
        const used = new Set<string>();
        for (const r of results) {
          const base = join(reportsDir, uniqueReportName(reportsDir, reportBaseName(r), r.update_id, used));
          const meta = { mediumUuid, writtenAt, device: this.opts.device };
          writeFileAtomic(`${base}.json`, reportJson(r, meta));
          writeFileAtomic(`${base}.txt`, reportText(r, meta));
        }
      }
      writeFileAtomic(join(mountpoint, this.opts.resultFileName), resultFileText(results, note));
    } catch (error) {
      return { results, written: false, error };
    }
    if (rows.length) {
      const del = this.db.prepare('DELETE FROM agent_stick_reports WHERE id = ?');
      this.db.transaction(() => {
        for (const r of rows) del.run(r.id);
      })();
    }
    return { results, written: true };
  }

  /** Drop pending reports older than the history retention. */
  prune(cutoffIso: string): number {
    return this.db.prepare('DELETE FROM agent_stick_reports WHERE created_at < ?').run(cutoffIso).changes;
  }

  private pendingRows(mediumUuid: string): { id: number; result: UpdateResult }[] {
    const rows = this.db
      .prepare('SELECT id, result FROM agent_stick_reports WHERE medium_uuid = ? ORDER BY id')
      .all(mediumUuid) as { id: number; result: string }[];
    return rows.map((r) => ({ id: r.id, result: JSON.parse(r.result) as UpdateResult }));
  }
}

/** What the LED should say about a delivered batch. */
export function batchSucceeded(results: UpdateResult[]): boolean {
  return results.length > 0 && results.every((r) => isSuccess(r.outcome));
}

/**
 * `<time>-<package>`, or `<time>-<package>-N` when that name already holds the report of a
 * different update (the same package answered twice within one second, e.g. a quick
 * re-insertion). The same update's report is simply rewritten.
 */
function uniqueReportName(dir: string, base: string, updateId: string, used: Set<string>): string {
  for (let n = 1; ; n++) {
    const name = n === 1 ? base : `${base}-${n}`;
    if (used.has(name)) continue;
    let existing: string | undefined;
    try {
      existing = (JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as { update?: { update_id?: string } }).update?.update_id ?? '';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') existing = '';
    }
    if (existing === undefined || existing === updateId) {
      used.add(name);
      return name;
    }
  }
}
