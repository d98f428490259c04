// Housekeeping, run on a node-cron schedule (agent.toml schedules.housekeeping):
//  - staging folders <state_dir>/staging/<update-id>/ left behind by closed (or unknown)
//    updates and older than an hour are removed; an open update's folder is never touched;
//  - history beyond the retention is pruned (closed updates only; steps cascade);
//  - stick reports still pending past the retention are dropped.
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../store/db.js';

export const STAGING_MIN_AGE_MS = 60 * 60 * 1000;

export function cleanStaging(db: Db, stateDir: string, now: Date = new Date(), minAgeMs = STAGING_MIN_AGE_MS): string[] {
  const staging = join(stateDir, 'staging');
  let names: string[];
  try {
    names = readdirSync(staging);
  } catch {
    return [];
  }
  const lookup = db.prepare('SELECT closed FROM updates WHERE id = ?');
  const removed: string[] = [];
  for (const name of names) {
    const dir = join(staging, name);
    let st;
    try {
      st = lstatSync(dir);
    } catch {
      continue;
    }
    if (now.getTime() - st.mtimeMs < minAgeMs) continue;
    const row = lookup.get(name) as { closed: number } | undefined;
    if (row && row.closed !== 1) continue; // an open update: the pipeline still needs it
    rmSync(dir, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

export function pruneHistory(db: Db, retentionDays: number, now: Date = new Date()): number {
  const cutoff = new Date(now.getTime() - retentionDays * 86_400_000).toISOString();
  return db.prepare('DELETE FROM updates WHERE closed = 1 AND finished_at < ?').run(cutoff).changes;
}
