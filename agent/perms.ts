// Modes of what Caisson keeps under its state dir, set explicitly: a umask can only take
// bits away from a create mode, but a file or folder made earlier (or by another tool)
// keeps whatever it had, so it is tightened at every open.
import { chmodSync } from 'node:fs';

export const STATE_DIR_MODE = 0o750;
export const STATE_FILE_MODE = 0o640;

/** chmod where we may; someone else's file (a CLI run by another user) stays as it is. */
export function tighten(path: string, mode: number): void {
  try {
    chmodSync(path, mode);
  } catch {
    // not ours to change (or gone); the owner's setup decides
  }
}
