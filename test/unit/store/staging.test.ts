// One rule for leftover staging folders, narrowed per caller: recovery (update-ID names
// only), `caisson package cleanup` (everything not open), housekeeping (older than an hour).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeLeftoverStaging, stagingDirFor } from '../../../agent/store/staging.js';

describe('staging leftovers', () => {
  let state: string;
  const OPEN = 'u-20260316T120000Z-aaaaaa';
  const CLOSED = 'u-20260316T110000Z-bbbbbb';
  beforeEach(() => {
    state = mkdtempSync(join(tmpdir(), 'caisson-staging-'));
    for (const name of [OPEN, CLOSED, 'not-an-update']) {
      mkdirSync(stagingDirFor(state, name), { recursive: true });
      writeFileSync(join(stagingDirFor(state, name), 'image.tar'), 'x');
    }
  });
  afterEach(() => rmSync(state, { recursive: true, force: true }));

  const left = () => readdirSync(join(state, 'staging')).sort();

  it('never removes an open update\'s folder; cleanup removes everything else', () => {
    assert.deepEqual(removeLeftoverStaging(state, { open: [OPEN] }).sort(), ['not-an-update', CLOSED]);
    assert.deepEqual(left(), [OPEN]);
  });

  it('recovery removes only folders named like an update ID', () => {
    assert.deepEqual(removeLeftoverStaging(state, { open: [OPEN], onlyUpdateIds: true }), [CLOSED]);
    assert.deepEqual(left(), [OPEN, 'not-an-update'].sort());
  });

  it('housekeeping removes only folders older than its minimum age', () => {
    const now = new Date();
    const old = new Date(now.getTime() - 2 * 3600_000);
    utimesSync(stagingDirFor(state, CLOSED), old, old);
    assert.deepEqual(removeLeftoverStaging(state, { open: [], minAgeMs: 3600_000, now }), [CLOSED]);
    assert.equal(existsSync(stagingDirFor(state, 'not-an-update')), true);
  });

  it('has nothing to do without a staging folder', () => {
    assert.deepEqual(removeLeftoverStaging(join(state, 'nowhere'), { open: [] }), []);
  });
});
