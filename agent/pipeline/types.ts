// What callers (CLI, agent) hand the pipeline and what they get back.
import type { ErrorCode } from '../errors.js';

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

export interface UpdateRequest {
  packagePath: string;
  source: UpdateSource;
  /** Only the local CLI may set this; a package never can. */
  allowDowngrade?: boolean;
  /** Asked after validation, before anything changes; false cancels (outcome rejected). */
  confirm?: (summary: { service: string; from?: string; to: string; version: string }) => Promise<boolean>;
  /** Stick the package came from (filesystem UUID), for reports. */
  mediumUuid?: string;
}

/** Exit codes of `caisson package load|validate` (docs/cli.md). */
export const EXIT_CODES: Record<Outcome, number> = {
  committed: 0,
  valid: 0,
  already_installed: 0,
  rejected: 2,
  rolled_back: 3,
  rollback_failed: 4,
};
export const EXIT_UNEXPECTED = 1;
