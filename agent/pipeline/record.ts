// How the pipeline writes an update's journal record: every state it saves and every close
// passes the state table here (a move the table does not list is refused), then the
// afterSave hook runs (the fault-injection point, fault.ts). The record's data is typed
// here; the store keeps it as versioned JSON (store/journal-data.ts).
import { rmSync } from 'node:fs';
import { CaissonError } from '../errors.js';
import type { ErrorSummary, Outcome } from '../model.js';
import type { Journal, JournalData, MemberRow, TransitionOptions } from '../store/journal.js';
import type { SwitchPlan } from '../runtime/driver.js';
import type { TagSnapshot } from './image-import.js';
import type { MemberData } from './stack.js';
import { mayMove, type Next, type State } from './states.js';

/** Journal data of one update (JOURNAL_DATA_VERSION, store/journal-data.ts). */
export interface UpdateData extends JournalData {
  stagingDir?: string;
  imageRef?: string;
  tagsBefore?: TagSnapshot;
  expectedImageId?: string;
  loadedImageId?: string;
  plan?: SwitchPlan;
  newContainerId?: string;
  originalError?: ErrorSummary;
  // a stack update (stack.ts): every image it imports, and each service's plan in switch order
  imageRefs?: string[];
  expectedImageIds?: string[];
  loadedImageIds?: string[];
  members?: MemberData[];
  /** issued_at of a package whose signature a trusted key verified: the commit records it (store/freshness.ts). */
  issuedAt?: string;
}

export class UpdateRecords {
  constructor(
    private readonly journal: Journal,
    private readonly afterSave: (saved: string) => void,
  ) {}

  /**
   * Save a state (or a driver's sub-step of it, as "<state>.<step>") durably, before the
   * side effect it announces.
   */
  save(id: string, state: State, opts: TransitionOptions = {}, step?: string): void {
    this.checkMove(id, state);
    const saved = step ? `${state}.${step}` : state;
    this.journal.transition(id, saved, opts);
    this.afterSave(saved);
  }

  /** Add what the update learned to its current state, without announcing a new side effect. */
  annotate(id: string, opts: TransitionOptions): void {
    this.journal.annotate(id, opts);
  }

  /** Close the record with its outcome, then remove its staging copy. */
  finish(
    id: string,
    outcome: Outcome,
    error?: ErrorSummary,
    detail?: string,
    opts: { next?: string; onClose?: () => void; members?: readonly MemberRow[] } = {},
  ): void {
    this.checkMove(id, 'closed');
    const err = error && opts.next ? { ...error, next: opts.next } : error;
    this.journal.close(id, outcome, err, { detail, onClose: opts.onClose, members: opts.members });
    this.afterSave(`closed:${outcome}`);
    this.removeStaging(id);
  }

  data(id: string): UpdateData {
    return this.journal.data(id) as UpdateData;
  }

  removeStaging(id: string): void {
    const dir = this.data(id).stagingDir;
    if (dir) rmSync(dir, { recursive: true, force: true });
  }

  private checkMove(id: string, to: Next): void {
    const from = this.journal.get(id)?.state;
    if (from !== undefined && !mayMove(from, to)) {
      throw new CaissonError('internal.error', `update ${id}: the state table has no move from "${from}" to "${to}"`);
    }
  }
}
