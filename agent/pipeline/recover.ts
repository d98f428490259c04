// On start, finish or reverse every update a crash, power cut or kill left open. The
// state each record stopped in says what to do (states.ts); every action is idempotent,
// so a crash during recovery is recovered by the next start.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CaissonError } from '../errors.js';
import { findService } from '../config/services.js';
import type { Catalog } from '../config/services.js';
import type { Journal, UpdateRow } from '../store/journal.js';
import type { SwitchPlan } from '../runtime/driver.js';
import type { ErrorSummary, UpdateResult } from './types.js';
import { recoveryActionFor } from './states.js';
import type { UpdatePipeline } from './pipeline.js';

export async function recoverOpenUpdates(
  pipeline: UpdatePipeline,
  journal: Journal,
  catalog: Catalog,
  stateDir?: string,
): Promise<UpdateResult[]> {
  const results: UpdateResult[] = [];
  for (const row of journal.openRecords()) {
    await recoverOne(pipeline, journal, catalog, row);
    results.push(journal.toResult(row.id));
  }
  if (stateDir) removeOrphanStaging(stateDir, journal);
  return results;
}

/**
 * A kill right after a record was closed (before its staging copy was removed) leaves a
 * staging folder no open record owns: remove every such folder. Only folders named like an
 * update ID are touched.
 */
function removeOrphanStaging(stateDir: string, journal: Journal): void {
  const dir = join(stateDir, 'staging');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const open = new Set(journal.openRecords().map((r) => r.id));
  for (const name of names) {
    if (open.has(name) || !/^u-[0-9TZ]+-[0-9a-f]+$/.test(name)) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
  }
}

async function recoverOne(pipeline: UpdatePipeline, journal: Journal, catalog: Catalog, row: UpdateRow): Promise<void> {
  const interrupted = new CaissonError('update.interrupted', `update was interrupted in state ${row.state} and recovered on restart`);
  const action = row.kind === 'validation' ? 'discard' : recoveryActionFor(row.state);
  if (action === 'discard') {
    await pipeline.discard(row.id, interrupted);
    return;
  }
  const data = journal.data(row.id) as { plan?: SwitchPlan; originalError?: ErrorSummary };
  const service = row.service ? findService(catalog, row.service) : undefined;
  if (!data.plan || !service) {
    // no plan was saved, so nothing was switched: the service was never touched
    await pipeline.discard(row.id, interrupted);
    return;
  }
  if (action === 'finish_commit') {
    await pipeline.commit(row.id, service, data.plan);
    return;
  }
  await pipeline.rollback(row.id, service, data.plan, data.originalError ?? summaryOf(interrupted));
}

function summaryOf(err: CaissonError): ErrorSummary {
  return { code: err.code, message: err.message, next: err.next };
}
