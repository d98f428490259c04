// What callers (CLI, agent) hand the pipeline and what they get back. The records
// themselves live on the ground floor (model.ts), shared with the store and the reports.
export type { ErrorSummary, Outcome, StepRecord, UpdateResult, UpdateSource } from '../model.js';
import type { UpdateSource } from '../model.js';

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
