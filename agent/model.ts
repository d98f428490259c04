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

/**
 * One service of a stack update (a package of package_type "stack"): what it ran before,
 * what the stack brings, and how far its part got. A stack commits or rolls back whole, so
 * `outcome` of the update says where every service ended; `state` is this service's last
 * step (planned: its switch plan is saved; switched: the new version started; healthy: it
 * passed its probe; restored: the previous version runs again, verified; committed).
 */
export interface ServiceResult {
  service: string;
  from_version?: string;
  to_version?: string;
  from_image?: string;
  to_image?: string;
  state: 'pending' | 'planned' | 'switched' | 'healthy' | 'restored' | 'committed';
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
  /** A stack update: the stack's name (`package_version` is the stack's version). */
  stack?: string;
  /** A stack update: each service in switch order. */
  services?: ServiceResult[];
  error?: ErrorSummary;
  started_at: string;
  finished_at: string;
  steps: StepRecord[];
}
