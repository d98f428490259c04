// Housekeeping, run on a node-cron schedule (agent.toml schedules.housekeeping):
//  - staging folders <state_dir>/staging/<update-id>/ left behind by closed (or unknown)
//    updates and older than an hour are removed; an open update's folder is never touched;
//  - history beyond the retention is pruned (closed updates only; steps cascade);
//  - stick reports still pending past the retention are dropped.
import type { Db } from '../store/db.js';
import { Journal } from '../store/journal.js';
import { removeLeftoverStaging } from '../store/staging.js';

export const STAGING_MIN_AGE_MS = 60 * 60 * 1000;

export function cleanStaging(db: Db, stateDir: string, now: Date = new Date(), minAgeMs = STAGING_MIN_AGE_MS): string[] {
  const open = new Journal(db).openRecords().map((r) => r.id);
  return removeLeftoverStaging(stateDir, { open, minAgeMs, now });
}

export function pruneHistory(db: Db, retentionDays: number, now: Date = new Date()): number {
  const cutoff = new Date(now.getTime() - retentionDays * 86_400_000).toISOString();
  return new Journal(db).pruneClosed(cutoff);
}
