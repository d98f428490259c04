// Exit codes of the CLI (docs/cli.md): one per outcome, and 1 for anything unexpected.
import type { Outcome } from '../model.js';

/** Exit codes of `caisson package load|validate` and `caisson recover` (docs/cli.md). */
export const EXIT_CODES: Record<Outcome, number> = {
  committed: 0,
  valid: 0,
  already_installed: 0,
  rejected: 2,
  rolled_back: 3,
  rollback_failed: 4,
};
export const EXIT_UNEXPECTED = 1;
