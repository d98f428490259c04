// The layers of agent/, lowest first (test/unit/layers.test.ts enforces them; docs/architecture.md shows them).
/** Lowest first. A top-level file is its own layer entry (by name); a folder is one by its name. */
export const LAYERS: string[][] = [
  ['errors.ts', 'version.ts', 'perms.ts', 'atomic.ts'],
  ['model.ts'],
  ['config', 'log'],
  ['device'],
  ['store', 'health'],
  ['runtime'],
  ['package'],
  ['pipeline'],
  ['report'],
  ['intake'],
  ['web'],
  ['cli'],
];
