// docs/architecture.md shows the state table of agent/pipeline/states.ts and the layers
// test/unit/layers.test.ts enforces; this keeps the page in step with the code.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { stateTableMarkdown } from '../../scripts/gen-state-table.js';
import { LAYERS } from '../support/layers.js';

describe('docs/architecture.md', () => {
  const text = readFileSync(new URL('../../docs/architecture.md', import.meta.url), 'utf8');

  it('holds the state table as the code defines it (regenerate: npx tsx scripts/gen-state-table.ts)', () => {
    const section = /<!-- state-table[^>]*-->\n([\s\S]*?)<!-- \/state-table -->/.exec(text);
    assert.notEqual(section, null, 'state-table markers');
    assert.equal(section![1], stateTableMarkdown());
  });

  it('names every layer', () => {
    const missing = LAYERS.flat().filter((unit) => !text.includes(`\`${unit.endsWith('.ts') ? unit : `${unit}/`}\``));
    assert.deepEqual(missing, []);
  });
});
