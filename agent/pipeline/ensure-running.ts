// At start, after recovery: a predefined service whose last update closed is meant to be
// running (an update never leaves one stopped, pipeline.ts). An engine restart stops every
// container whose restart policy is "no", and nothing would start it again: start it, and
// say so. Services with an update still open are recovery's business; services Caisson never
// updated are left as the operator keeps them.
import type { Catalog } from '../config/services.js';
import { describe } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import type { Journal } from '../store/journal.js';

export interface EnsureRunningResult {
  service: string;
  /** started: it was stopped and now runs; failed: starting it failed; missing: no container. */
  action: 'started' | 'failed' | 'missing';
  containerId?: string;
  /** Docker's status word before the start (exited, created, …). */
  status: string;
  detail?: string;
}

export async function ensureServicesRunning(deps: {
  catalog: Catalog;
  journal: Journal;
  engine: Engine;
}): Promise<EnsureRunningResult[]> {
  const results: EnsureRunningResult[] = [];
  for (const service of deps.catalog.services) {
    const last = deps.journal.lastUpdateFor(service.name);
    if (!last || !last.closed) continue;
    let state;
    try {
      state = await deps.engine.driverFor(service).inspect();
    } catch (err) {
      results.push({ service: service.name, action: 'failed', status: 'unknown', detail: describe(err) });
      continue;
    }
    if (state.running || state.status === 'restarting') continue;
    if (!state.containerId) {
      results.push({ service: service.name, action: 'missing', status: state.status });
      continue;
    }
    try {
      await deps.engine.startContainer(state.containerId);
      results.push({ service: service.name, action: 'started', containerId: state.containerId, status: state.status });
    } catch (err) {
      results.push({ service: service.name, action: 'failed', containerId: state.containerId, status: state.status, detail: describe(err) });
    }
  }
  return results;
}
