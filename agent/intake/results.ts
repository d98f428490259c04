// The answer the agent records for a package the pipeline could not even take (it threw).
import { randomUUID } from 'node:crypto';
import { toCaissonError } from '../errors.js';
import type { UpdateRequest, UpdateResult } from '../pipeline/types.js';

export function failureResult(req: UpdateRequest, err: unknown): UpdateResult {
  const now = new Date().toISOString();
  return {
    update_id: `agent-${randomUUID()}`,
    outcome: 'rejected',
    source: req.source,
    package_file: req.packagePath,
    error: toCaissonError(err).toJSON(),
    started_at: now,
    finished_at: now,
    steps: [],
  };
}
