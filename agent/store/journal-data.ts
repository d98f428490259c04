// The versioned JSON each journal record carries (staging folder, tag snapshot, switch
// plan, ...). Like the SQL migrations in db.ts, every change of its shape bumps the version
// and adds an upgrade step; a record is upgraded when it is read, so a record left open by
// an older Caisson is recovered by a newer one. A record written by a newer Caisson than
// this one is refused, never guessed at.
import { CaissonError } from '../errors.js';

/** Bump when the shape of `data` changes, and add the step from the previous version below. */
export const JOURNAL_DATA_VERSION = 3;

export interface JournalData {
  v: number;
  stagingDir?: string;
  [key: string]: unknown;
}

type Upgrade = (data: Record<string, unknown>) => Record<string, unknown>;

/** UPGRADES[n] turns version n into version n + 1. */
const UPGRADES: Record<number, Upgrade> = {
  // v1 kept a switch plan's mode-specific fields under `plan.details`; v2 keeps them on
  // the plan itself, one typed shape per runtime mode
  1: (data) => {
    const plan = data.plan as { details?: Record<string, unknown> } | undefined;
    if (!plan || typeof plan !== 'object' || !plan.details) return data;
    const { details, ...rest } = plan;
    return { ...data, plan: { ...details, ...rest } };
  },
  // v3 adds stack records (`members`: each service's switch plan and progress). Nothing
  // older changes shape; the bump is there so that a Caisson before stacks refuses such a
  // record (it would see no plan and discard it) instead of guessing.
  2: (data) => data,
};

/** Parse a record's data and bring it to JOURNAL_DATA_VERSION. */
export function readJournalData(text: string): JournalData {
  let data: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(text);
    data = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    data = {};
  }
  let version = typeof data.v === 'number' && Number.isInteger(data.v) ? data.v : 1;
  if (version > JOURNAL_DATA_VERSION) throw new JournalDataTooNew(version);
  for (; version < JOURNAL_DATA_VERSION; version++) data = UPGRADES[version]!(data);
  return { ...data, v: JOURNAL_DATA_VERSION };
}

/** A record written by a newer Caisson: recovery keeps it open rather than guess. */
export class JournalDataTooNew extends CaissonError {
  constructor(readonly version: number) {
    super('internal.error', `journal data version ${version} is newer than this Caisson understands (${JOURNAL_DATA_VERSION})`, {
      next: 'A newer Caisson wrote this record: finish it with that version (`caisson recover`), or check the service by hand.',
    });
  }
}
