// Reports on the stick a package came from. Every outcome is first saved as "pending"
// for that stick (by filesystem UUID) in the state database, then written to the stick;
// only a complete, flushed write clears it. A read-only, full or already removed stick
// keeps its reports pending until a stick with the same UUID is inserted again.
// The writing itself happens in a child process with a deadline (stick-io.ts), through
// calls that never follow a link or open an existing file on the stick (stick-fs.ts).
import type { Db } from '../store/db.js';
import type { UpdateResult } from '../pipeline/types.js';
import { isSuccess, reportBaseName, reportJson, reportText, resultFileText } from './format.js';
import { DEFAULT_STICK_TIMEOUT_MS, runStickJob } from './stick-io.js';

export interface StickReportOptions {
  resultFileName: string;
  reportsDirName: string;
  /** True when `dir` is the stick itself (a mount point), not the empty folder left behind. */
  isMounted: (dir: string) => boolean;
  /** How long a stick may take to write all reports before it counts as hung. */
  timeoutMs?: number;
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

/** The one FAILED line for the packages beyond the per-stick limit (none of them was read). */
export function tooManyPackagesNote(found: number, limit: number, firstLeftOut: string): string {
  const left = found - limit;
  return (
    `FAILED | ${left} more package${left === 1 ? '' : 's'} (from ${firstLeftOut} on) | not taken | ` +
    `stick.too_many_packages: this stick holds ${found} packages and this device takes at most ${limit} from one stick ` +
    `(agent.toml intake.max_packages_per_stick). Next: Put at most ${limit} packages on a stick; bring the rest on another.`
  );
}

export class StickReports {
  constructor(
    private readonly db: Db,
    private readonly opts: StickReportOptions,
  ) {}

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
   * package, plus `note` when given), each flushed; report names are created exclusively
   * (`<time>-<package>`, else `-2`, `-3`, …), the result file is replaced as a whole.
   * Clears what was written.
   */
  async deliver(mediumUuid: string, mountpoint: string, note?: string, signal?: AbortSignal): Promise<Delivery> {
    const rows = this.pendingRows(mediumUuid);
    const results = rows.map((r) => r.result);
    if (!this.opts.isMounted(mountpoint)) {
      return { results, written: false, error: new Error(`${mountpoint} is not mounted (stick removed)`) };
    }
    const writtenAt = new Date().toISOString();
    const meta = { mediumUuid, writtenAt, device: this.opts.device };
    try {
      await runStickJob(
        {
          op: 'deliver',
          mountpoint,
          reportsDir: this.opts.reportsDirName,
          resultFile: this.opts.resultFileName,
          resultText: resultFileText(results, note),
          reports: results.map((r) => ({ base: reportBaseName(r), json: reportJson(r, meta), txt: reportText(r, meta) })),
        },
        this.opts.timeoutMs ?? DEFAULT_STICK_TIMEOUT_MS,
        signal,
      );
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

