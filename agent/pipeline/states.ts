// The journal states of one update, as data. Each is saved before the side effect that
// follows it, so on restart the state alone says whether to clean up, roll back or
// finish the commit (recover.ts). Sub-steps of a driver are saved as "<state>.<step>".

export const STATES = {
  received: 'package seen; staging folder chosen',
  staged: 'package copied once into staging and hashed',
  validated: 'structure, manifest, catalog, integrity, signature, policy and disk checked',
  loading_image: 'importing the image into the engine (tags snapshotted before)',
  image_loaded: 'image imported and verified; service not touched yet',
  switching: 'replacing the running container (previous one kept)',
  health_checking: 'new version started; waiting for it to prove healthy',
  committing: 'new version healthy; dropping what was kept for rollback',
  rolling_back: 'putting the previous version back',
} as const;

export type State = keyof typeof STATES;

/** What a restart does with an open record, by the state it stopped in. */
export type RecoveryAction = 'discard' | 'rollback' | 'finish_commit';

export function recoveryActionFor(state: string): RecoveryAction {
  const base = state.split('.')[0] as State;
  switch (base) {
    case 'switching':
    case 'health_checking':
    case 'rolling_back':
      return 'rollback';
    case 'committing':
      return 'finish_commit';
    default:
      // received, staged, validated, loading_image, image_loaded: the service was never touched
      return 'discard';
  }
}

/** States after which the service may have been touched. */
export function touchedService(state: string): boolean {
  return recoveryActionFor(state) !== 'discard';
}
