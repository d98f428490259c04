// The journal states of one update, as data: what each announces, where it may go next and
// what recovery does when a crash leaves a record there. Each state is saved before the
// side effect it announces, so on restart the state alone says what to do. A driver's
// sub-steps are saved as "<state>.<step>" and belong to their state; a stack update (one
// record for several services, stack.ts) saves each service's part as "<state>.<service>"
// and its driver's sub-steps as "<state>.<service>.<step>". The pipeline
// (pipeline.ts) refuses a move this table does not list; recovery (recover.ts) re-enters
// it; docs/architecture.md shows it (a unit test keeps the two in step).

/** Every state, in the order an update that commits passes them. */
export const STATES = [
  'received',
  'staged',
  'validated',
  'loading_image',
  'image_loaded',
  'switching',
  'health_checking',
  'committing',
  'rolling_back',
] as const;

export type State = (typeof STATES)[number];

/**
 * What recovery does with a record a crash left in a state:
 *   discard  the service was never touched: close it `rejected`, put back the tags an
 *            import moved, remove the staging copy;
 *   reverse  the service may be half switched: roll back to the previous version;
 *   finish   the new version was proven healthy: finish the commit.
 */
export type Recovery = 'discard' | 'reverse' | 'finish';

/** Where a record may go from a state: another state, or closed with an outcome. */
export type Next = State | 'closed';

export interface StateSpec {
  /** The side effect this state announces (saved before it happens). */
  announces: string;
  /** The states (or `closed`) the pipeline may save next. Re-entering the same state is always allowed. */
  next: readonly Next[];
  /** What a restart does with a record left here. */
  recovery: Recovery;
}

export const STATE_TABLE: { readonly [S in State]: StateSpec } = {
  received: {
    announces: 'package seen; staging folder chosen',
    next: ['staged', 'closed'],
    recovery: 'discard',
  },
  staged: {
    announces: 'package copied once into staging and hashed',
    next: ['validated', 'closed'],
    recovery: 'discard',
  },
  validated: {
    announces: 'structure, manifest, catalog, integrity, signature, policy and disk checked',
    next: ['loading_image', 'closed'],
    recovery: 'discard',
  },
  loading_image: {
    announces: 'importing the image into the engine (tags snapshotted before)',
    next: ['image_loaded', 'closed'],
    recovery: 'discard',
  },
  image_loaded: {
    announces: 'image imported and verified; service not touched yet',
    next: ['switching', 'closed'],
    recovery: 'discard',
  },
  switching: {
    announces: 'replacing the running container (previous one kept)',
    next: ['health_checking', 'rolling_back', 'closed'],
    recovery: 'reverse',
  },
  health_checking: {
    announces: 'new version started; waiting for it to prove healthy',
    // a stack switches its next service once the previous one passed its probe
    next: ['switching', 'committing', 'rolling_back', 'closed'],
    recovery: 'reverse',
  },
  committing: {
    announces: 'new version healthy; dropping what was kept for rollback',
    next: ['closed'],
    recovery: 'finish',
  },
  rolling_back: {
    announces: 'putting the previous version back',
    next: ['closed'],
    recovery: 'reverse',
  },
};

/** A saved state name split into its state and a driver's sub-step ("switching.park_old"). */
export interface ParsedState {
  state: State;
  step?: string;
}

/** The state a saved name belongs to, or undefined for a name this table does not know. */
export function parseState(saved: string): ParsedState | undefined {
  const dot = saved.indexOf('.');
  const base = dot < 0 ? saved : saved.slice(0, dot);
  if (!isState(base)) return undefined;
  return dot < 0 ? { state: base } : { state: base, step: saved.slice(dot + 1) };
}

export function isState(name: string): name is State {
  return (STATES as readonly string[]).includes(name);
}

/** What recovery does with a record saved in `saved`; undefined when the state is unknown. */
export function recoveryFor(saved: string): Recovery | undefined {
  const parsed = parseState(saved);
  return parsed && STATE_TABLE[parsed.state].recovery;
}

/** May the service have been touched once a record reached `saved`? Unknown states: assume so. */
export function touchedService(saved: string): boolean {
  return recoveryFor(saved) !== 'discard';
}

/** Is `to` (a state or `closed`) a move the table allows from the saved state `from`? */
export function mayMove(from: string, to: Next): boolean {
  const parsed = parseState(from);
  if (!parsed) return false;
  return parsed.state === to || STATE_TABLE[parsed.state].next.includes(to);
}
