// The update journal and history: one row per update (or validation), one row per step.
// A state change and its audit step are written in one transaction, durably, before the
// side effect it announces; a restart reads the open rows to finish or reverse them.
import { randomBytes } from 'node:crypto';
import type { Db } from './db.js';
import type { ErrorSummary, Outcome, ServiceResult, StepRecord, UpdateResult, UpdateSource } from '../model.js';
import { JOURNAL_DATA_VERSION, readJournalData, type JournalData } from './journal-data.js';

export { JOURNAL_DATA_VERSION, JournalDataTooNew, type JournalData } from './journal-data.js';

export interface UpdateRow {
  id: string;
  kind: 'update' | 'validation';
  source: UpdateSource;
  package_file: string;
  package_id: string | null;
  package_version: string | null;
  service: string | null;
  from_image: string | null;
  to_image: string | null;
  from_version: string | null;
  to_version: string | null;
  state: string;
  outcome: Outcome | null;
  error_code: string | null;
  error_message: string | null;
  error_next: string | null;
  data: string;
  medium_uuid: string | null;
  /** A stack update: the stack's name (its services are update_members rows); absent in a database an older Caisson wrote. */
  stack?: string | null;
  started_at: string;
  finished_at: string | null;
  closed: number;
}

/** Columns a transition may fill in as the update learns more. */
export type UpdatePatch = Partial<
  Pick<UpdateRow, 'package_id' | 'package_version' | 'service' | 'from_image' | 'to_image' | 'from_version' | 'to_version' | 'stack'>
>;

/** One service of a stack update, as update_members keeps it. */
export type MemberRow = ServiceResult;

export interface TransitionOptions {
  detail?: string;
  data?: Partial<JournalData>;
  patch?: UpdatePatch;
  /** A stack update's services, in switch order: written whole, in the same transaction. */
  members?: readonly MemberRow[];
}

export interface InstalledRow {
  service: string;
  package_version: string;
  package_id: string;
  image_ref: string;
  update_id: string;
  installed_at: string;
  highest_version: string;
  /** Installed by a stack package: its name and version (null for a service package). */
  stack?: string | null;
  stack_version?: string | null;
}

export class Journal {
  constructor(readonly db: Db) {}

  /** Open a new record in state `received`. */
  begin(input: { kind: 'update' | 'validation'; source: UpdateSource; packageFile: string; mediumUuid?: string }): string {
    const id = newUpdateId();
    const at = now();
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO updates (id, kind, source, package_file, state, data, medium_uuid, started_at)
           VALUES (?, ?, ?, ?, 'received', ?, ?, ?)`,
        )
        .run(id, input.kind, input.source, input.packageFile, JSON.stringify({ v: JOURNAL_DATA_VERSION }), input.mediumUuid ?? null, at);
      this.insertStep(id, 'received', at, input.packageFile);
    })();
    return id;
  }

  /** Save a new state (and optional data/columns) durably, with its audit step. */
  transition(id: string, state: string, opts: TransitionOptions = {}): void {
    this.write(id, () => state, opts);
  }

  /**
   * Add what the update learned to its current state (data, columns, an audit step under
   * the state's own name) without moving it: no new side effect is announced.
   */
  annotate(id: string, opts: TransitionOptions): void {
    this.write(id, (row) => row.state, opts);
  }

  private write(id: string, stateOf: (row: UpdateRow) => string, opts: TransitionOptions): void {
    const at = now();
    this.db.transaction(() => {
      const row = this.get(id);
      if (!row) throw new Error(`no journal record ${id}`);
      const state = stateOf(row);
      const data = opts.data ? JSON.stringify({ ...readJournalData(row.data), ...opts.data, v: JOURNAL_DATA_VERSION }) : row.data;
      const patch = opts.patch ?? {};
      const cols = Object.keys(patch) as (keyof UpdatePatch)[];
      const sets = ['state = ?', 'data = ?', ...cols.map((c) => `${c} = ?`)].join(', ');
      this.db.prepare(`UPDATE updates SET ${sets} WHERE id = ?`).run(state, data, ...cols.map((c) => patch[c] ?? null), id);
      if (opts.members) this.writeMembers(id, opts.members);
      this.insertStep(id, state, at, opts.detail);
    })();
  }

  private writeMembers(id: string, members: readonly MemberRow[]): void {
    this.db.prepare('DELETE FROM update_members WHERE update_id = ?').run(id);
    const insert = this.db.prepare(
      `INSERT INTO update_members (update_id, seq, service, state, from_version, to_version, from_image, to_image)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    members.forEach((m, seq) => insert.run(id, seq, m.service, m.state, m.from_version ?? null, m.to_version ?? null, m.from_image ?? null, m.to_image ?? null));
  }

  /**
   * Rows of one service: its own updates and the stacks it was part of (two parameters: the
   * name twice). A database an older Caisson wrote, opened read-only (not migrated), has no
   * stacks yet.
   */
  private ofService(): string {
    const migrated = this.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'update_members'`).get();
    return migrated ? '(service = ? OR id IN (SELECT update_id FROM update_members WHERE service = ?))' : '(service = ? OR service = ?)';
  }

  /** A stack update's services in switch order (empty for a service update). */
  members(id: string): MemberRow[] {
    const rows = this.db
      .prepare('SELECT service, state, from_version, to_version, from_image, to_image FROM update_members WHERE update_id = ? ORDER BY seq')
      .all(id) as Record<string, string | null>[];
    return rows.map((r) => {
      const m: Record<string, string> = {};
      for (const [k, v] of Object.entries(r)) if (v != null) m[k] = v;
      return m as unknown as MemberRow;
    });
  }

  /** Close a record with its outcome; the row is final after this. */
  close(
    id: string,
    outcome: Outcome,
    error?: ErrorSummary,
    opts: { state?: string; detail?: string; onClose?: () => void; members?: readonly MemberRow[] } = {},
  ): void {
    const at = now();
    this.db.transaction(() => {
      const row = this.get(id);
      if (!row) throw new Error(`no journal record ${id}`);
      const state = opts.state ?? row.state;
      this.db
        .prepare(
          `UPDATE updates SET state = ?, outcome = ?, error_code = ?, error_message = ?, error_next = ?, finished_at = ?, closed = 1
           WHERE id = ?`,
        )
        .run(state, outcome, error?.code ?? null, error?.message ?? null, error?.next ?? null, at, id);
      if (opts.members) this.writeMembers(id, opts.members);
      this.insertStep(id, `closed:${outcome}`, at, opts.detail ?? error?.code);
      opts.onClose?.();
    })();
  }

  get(id: string): UpdateRow | undefined {
    return this.db.prepare('SELECT * FROM updates WHERE id = ?').get(id) as UpdateRow | undefined;
  }

  /** A record's data, upgraded to JOURNAL_DATA_VERSION; throws JournalDataTooNew for a newer one. */
  data(id: string): JournalData {
    const row = this.get(id);
    return row ? readJournalData(row.data) : { v: JOURNAL_DATA_VERSION };
  }

  steps(id: string): StepRecord[] {
    return (this.db.prepare('SELECT state, at, detail FROM steps WHERE update_id = ? ORDER BY seq').all(id) as StepRecord[]).map(
      (s) => (s.detail == null ? { state: s.state, at: s.at } : s),
    );
  }

  openRecords(): UpdateRow[] {
    return this.db.prepare('SELECT * FROM updates WHERE closed = 0 ORDER BY started_at').all() as UpdateRow[];
  }

  /** Drop closed records that finished before `cutoffIso` (their steps cascade); returns how many. */
  pruneClosed(cutoffIso: string): number {
    return this.db.prepare('DELETE FROM updates WHERE closed = 1 AND finished_at < ?').run(cutoffIso).changes;
  }

  list(opts: { limit?: number; service?: string } = {}): UpdateRow[] {
    const limit = opts.limit ?? 50;
    if (opts.service) {
      return this.db.prepare(`SELECT * FROM updates WHERE ${this.ofService()} ORDER BY started_at DESC, rowid DESC LIMIT ?`).all(opts.service, opts.service, limit) as UpdateRow[];
    }
    return this.db.prepare('SELECT * FROM updates ORDER BY started_at DESC, rowid DESC LIMIT ?').all(limit) as UpdateRow[];
  }

  /** The update that runs now, else the newest one (the status page's "live" view). */
  currentOrLastUpdate(): UpdateRow | undefined {
    return (this.db.prepare(`SELECT * FROM updates WHERE closed = 0 AND kind = 'update' ORDER BY started_at DESC, rowid DESC LIMIT 1`).get() ??
      this.db.prepare(`SELECT * FROM updates WHERE kind = 'update' ORDER BY started_at DESC, rowid DESC LIMIT 1`).get()) as UpdateRow | undefined;
  }

  /** The newest update of a service, its own package or a stack it was part of. */
  lastUpdateFor(service: string): UpdateRow | undefined {
    return this.db
      .prepare(`SELECT * FROM updates WHERE ${this.ofService()} AND kind = 'update' ORDER BY started_at DESC, rowid DESC LIMIT 1`)
      .get(service, service) as UpdateRow | undefined;
  }

  installed(service: string): InstalledRow | undefined {
    return this.db.prepare('SELECT * FROM installed WHERE service = ?').get(service) as InstalledRow | undefined;
  }

  /** The committed package with this identity, if any. */
  committedPackage(packageId: string): { service: string; package_version: string; update_id: string } | undefined {
    return this.db.prepare('SELECT service, package_version, update_id FROM installed_packages WHERE package_id = ?').get(packageId) as
      | { service: string; package_version: string; update_id: string }
      | undefined;
  }

  /**
   * Record what is installed now; part of the commit transaction (see close onClose). A
   * stack's services each get their row (with the stack's name and version); the package
   * itself is recorded once, under the stack's name (`packageOwner`).
   */
  recordInstalled(input: {
    service: string;
    version: string;
    packageId: string;
    imageRef: string;
    updateId: string;
    highest: string;
    stack?: { name: string; version: string };
  }): void {
    const at = now();
    this.db
      .prepare(
        `INSERT INTO installed (service, package_version, package_id, image_ref, update_id, installed_at, highest_version, stack, stack_version)
         VALUES (@service, @version, @packageId, @imageRef, @updateId, @at, @highest, @stack, @stackVersion)
         ON CONFLICT (service) DO UPDATE SET package_version = @version, package_id = @packageId, image_ref = @imageRef,
           update_id = @updateId, installed_at = @at, highest_version = @highest, stack = @stack, stack_version = @stackVersion`,
      )
      .run({
        service: input.service,
        version: input.version,
        packageId: input.packageId,
        imageRef: input.imageRef,
        updateId: input.updateId,
        highest: input.highest,
        at,
        stack: input.stack?.name ?? null,
        stackVersion: input.stack?.version ?? null,
      });
    this.db
      .prepare(
        `INSERT INTO installed_packages (package_id, service, package_version, update_id) VALUES (?, ?, ?, ?)
         ON CONFLICT (package_id) DO UPDATE SET update_id = excluded.update_id`,
      )
      .run(input.packageId, input.stack?.name ?? input.service, input.version, input.updateId);
  }

  /** The public view of one record (CLI --json, reports). */
  toResult(id: string): UpdateResult {
    const row = this.get(id);
    if (!row) throw new Error(`no journal record ${id}`);
    return rowToResult(row, this.steps(id), row.stack ? this.members(id) : undefined);
  }

  private insertStep(id: string, state: string, at: string, detail?: string): void {
    const seq = (this.db.prepare('SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM steps WHERE update_id = ?').get(id) as { n: number }).n;
    this.db.prepare('INSERT INTO steps (update_id, seq, state, at, detail) VALUES (?, ?, ?, ?, ?)').run(id, seq, state, at, detail ?? null);
  }
}

export function rowToResult(row: UpdateRow, steps: StepRecord[], members?: MemberRow[]): UpdateResult {
  const result: UpdateResult = {
    update_id: row.id,
    outcome: row.outcome ?? ('open' as Outcome),
    source: row.source,
    package_file: row.package_file,
    started_at: row.started_at,
    finished_at: row.finished_at ?? '',
    steps,
  };
  const optional = {
    package_id: row.package_id,
    package_version: row.package_version,
    service: row.service,
    from_image: row.from_image,
    to_image: row.to_image,
    from_version: row.from_version,
    to_version: row.to_version,
    stack: row.stack,
  };
  for (const [key, value] of Object.entries(optional)) if (value != null) (result as unknown as Record<string, unknown>)[key] = value;
  if (members) result.services = members;
  if (row.error_code) result.error = { code: row.error_code as ErrorSummary['code'], message: row.error_message ?? '', next: row.error_next ?? '' };
  return result;
}

function now(): string {
  return new Date().toISOString();
}

/** Sortable and unique: u-20260316T183000Z-1a2b3c. */
function newUpdateId(): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `u-${stamp}-${randomBytes(3).toString('hex')}`;
}
