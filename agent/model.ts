// The records every layer speaks of: what an update is, how it ended and the steps it took.
// Ground floor: imports nothing of the project but error codes, so the store, the pipeline,
// the reports and the CLI can all share these shapes without pointing at each other.
import type { ErrorCode } from './errors.js';

export type UpdateSource = 'cli' | 'usb' | 'inbox';

/**
 * committed: the new version runs and passed its health check.
 * valid: (validation only) the package passed every check; nothing was changed.
 * already_installed: this exact package (by sha256) was committed before; nothing touched.
 * rejected: refused before the service was touched.
 * rolled_back: switched, failed, and the previous version runs again (verified healthy).
 * rollback_failed: the previous version could not be restored: a person is needed.
 */
export type Outcome = 'committed' | 'valid' | 'already_installed' | 'rejected' | 'rolled_back' | 'rollback_failed';

export interface ErrorSummary {
  code: ErrorCode;
  message: string;
  next: string;
}

export interface StepRecord {
  state: string;
  at: string;
  detail?: string;
}

export interface UpdateResult {
  update_id: string;
  outcome: Outcome;
  source: UpdateSource;
  package_file: string;
  package_id?: string;
  package_version?: string;
  service?: string;
  from_image?: string;
  to_image?: string;
  from_version?: string;
  to_version?: string;
  error?: ErrorSummary;
  started_at: string;
  finished_at: string;
  steps: StepRecord[];
}
