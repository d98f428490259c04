// One rule for leftover staging folders, narrowed per caller: recovery (update-ID names
// only), `caisson package cleanup` (everything not open), housekeeping (older than an hour).
import { expect } from 'chai';
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
    expect(removeLeftoverStaging(state, { open: [OPEN] }).sort()).to.deep.equal(['not-an-update', CLOSED]);
    expect(left()).to.deep.equal([OPEN]);
  });

  it('recovery removes only folders named like an update ID', () => {
    expect(removeLeftoverStaging(state, { open: [OPEN], onlyUpdateIds: true })).to.deep.equal([CLOSED]);
    expect(left()).to.deep.equal([OPEN, 'not-an-update'].sort());
  });

  it('housekeeping removes only folders older than its minimum age', () => {
    const now = new Date();
    const old = new Date(now.getTime() - 2 * 3600_000);
    utimesSync(stagingDirFor(state, CLOSED), old, old);
    expect(removeLeftoverStaging(state, { open: [], minAgeMs: 3600_000, now })).to.deep.equal([CLOSED]);
    expect(existsSync(stagingDirFor(state, 'not-an-update'))).to.equal(true);
  });

  it('has nothing to do without a staging folder', () => {
    expect(removeLeftoverStaging(join(state, 'nowhere'), { open: [] })).to.deep.equal([]);
  });
});
