// The staging area, <state_dir>/staging/<update-id>/: one folder per update, holding the
// package copy while the update runs. One rule removes what is left over, for every caller
// (recovery at start, `caisson package cleanup`, scheduled housekeeping): a folder an open
// update owns is never touched. Callers narrow it further: recovery only removes folders
// named like an update ID, housekeeping only those older than an hour.
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** How a staging folder is named: the update's ID (store/journal.ts newUpdateId). */
export const UPDATE_ID_PATTERN = /^u-[0-9TZ]+-[0-9a-f]+$/;

export function stagingRoot(stateDir: string): string {
  return join(stateDir, 'staging');
}

export function stagingDirFor(stateDir: string, updateId: string): string {
  return join(stagingRoot(stateDir), updateId);
}

export interface LeftoverRule {
  /** IDs of the open updates: their folders stay. */
  open: Iterable<string>;
  /** Remove only folders named like an update ID (leave anything else alone). */
  onlyUpdateIds?: boolean;
  /** Remove only folders not modified for this long. */
  minAgeMs?: number;
  now?: Date;
}

/** Remove leftover staging folders; returns the names removed. */
export function removeLeftoverStaging(stateDir: string, rule: LeftoverRule): string[] {
  const root = stagingRoot(stateDir);
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const open = new Set(rule.open);
  const now = (rule.now ?? new Date()).getTime();
  const removed: string[] = [];
  for (const name of names) {
    if (open.has(name)) continue;
    if (rule.onlyUpdateIds && !UPDATE_ID_PATTERN.test(name)) continue;
    if (rule.minAgeMs !== undefined && !oldEnough(join(root, name), now, rule.minAgeMs)) continue;
    rmSync(join(root, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

function oldEnough(path: string, now: number, minAgeMs: number): boolean {
  try {
    return now - lstatSync(path).mtimeMs >= minAgeMs;
  } catch {
    return false;
  }
}
