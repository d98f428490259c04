// On start, finish or reverse every update a crash, power cut or kill left open. The state
// each record stopped in says what to do (the state table, states.ts); every action is
// idempotent, so a crash during recovery is recovered by the next start. A record this
// version cannot read (a state or journal data it does not know) stays open, and recovery
// says so by failing after the others were handled: guessing could leave a service half
// switched.
import { CaissonError } from '../errors.js';
import { findService } from '../config/services.js';
import type { Catalog } from '../config/services.js';
import { JournalDataTooNew, type Journal, type UpdateRow } from '../store/journal.js';
import { removeLeftoverStaging } from '../store/staging.js';
import type { SwitchPlan } from '../runtime/driver.js';
import type { ErrorSummary, UpdateResult } from './types.js';
import { recoveryFor, type Recovery } from './states.js';
import type { UpdatePipeline } from './pipeline.js';
import type { MemberData, PlannedMember } from './stack.js';

export async function recoverOpenUpdates(
  pipeline: UpdatePipeline,
  journal: Journal,
  catalog: Catalog,
  stateDir?: string,
): Promise<UpdateResult[]> {
  const results: UpdateResult[] = [];
  const unreadable: string[] = [];
  for (const row of journal.openRecords()) {
    const action = row.kind === 'validation' ? 'discard' : recoveryFor(row.state);
    if (!action) {
      unreadable.push(`${row.id} (state "${row.state}")`);
      continue;
    }
    try {
      await recoverOne(pipeline, journal, catalog, row, action);
    } catch (err) {
      if (!(err instanceof JournalDataTooNew)) throw err;
      unreadable.push(`${row.id} (${err.message})`);
      continue;
    }
    results.push(journal.toResult(row.id));
  }
  // a kill right after a record was closed (before its staging copy was removed) leaves a
  // staging folder no open record owns
  if (stateDir) removeLeftoverStaging(stateDir, { open: journal.openRecords().map((r) => r.id), onlyUpdateIds: true });
  if (unreadable.length > 0) {
    throw new CaissonError('internal.error', `left open, not recovered: ${unreadable.join('; ')}: this version of Caisson does not know how to finish it`, {
      next: 'A newer Caisson wrote it: finish it with that version (`caisson recover`), or check the service by hand before closing it.',
    });
  }
  return results;
}

async function recoverOne(pipeline: UpdatePipeline, journal: Journal, catalog: Catalog, row: UpdateRow, action: Recovery): Promise<void> {
  const interrupted = new CaissonError('update.interrupted', `update was interrupted in state ${row.state} and recovered on restart`);
  const data = journal.data(row.id) as { plan?: SwitchPlan; originalError?: ErrorSummary; members?: MemberData[] };
  if (action === 'discard') {
    await pipeline.discard(row.id, interrupted);
    return;
  }
  if (row.stack) {
    await recoverStack(pipeline, catalog, row, action, data.members ?? [], data.originalError ?? summaryOf(interrupted), interrupted);
    return;
  }
  const service = row.service ? findService(catalog, row.service) : undefined;
  if (!data.plan || !service) {
    // no plan was saved, so nothing was switched: the service was never touched
    await pipeline.discard(row.id, interrupted);
    return;
  }
  if (action === 'finish') {
    await pipeline.commit(row.id, service, data.plan);
    return;
  }
  await pipeline.rollback(row.id, service, data.plan, data.originalError ?? summaryOf(interrupted));
}

/**
 * A stack record: the services whose plan was saved are the ones that may have been
 * touched; finish commits them all, reverse puts them all back (in reverse order). None
 * planned: nothing was touched. A planned service the catalog no longer names cannot be
 * driven: the record stays open rather than be half recovered.
 */
async function recoverStack(
  pipeline: UpdatePipeline,
  catalog: Catalog,
  row: UpdateRow,
  action: Exclude<Recovery, 'discard'>,
  members: MemberData[],
  cause: ErrorSummary,
  interrupted: CaissonError,
): Promise<void> {
  const planned: PlannedMember[] = [];
  for (const m of members) {
    if (!m.plan) continue;
    const service = findService(catalog, m.service);
    if (!service) throw new CaissonError('config.invalid', `update ${row.id} switched ${m.service}, which services.toml no longer lists: put it back and run caisson recover`);
    planned.push({ service, plan: m.plan });
  }
  if (planned.length === 0) {
    await pipeline.discard(row.id, interrupted);
    return;
  }
  if (action === 'finish') await pipeline.stack.commit(row.id, planned);
  else await pipeline.stack.rollback(row.id, planned, cause);
}

function summaryOf(err: CaissonError): ErrorSummary {
  return { code: err.code, message: err.message, next: err.next };
}
