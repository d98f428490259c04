// What the state dir holds is for root: folder 0750, database files 0640, whatever the
// umask and whatever an earlier version left behind.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase } from '../../../agent/store/db.js';
import { removeTree, tempDir } from '../../support/intake-helpers.js';

const mode = (p: string) => statSync(p).mode & 0o777;

describe('state dir permissions', () => {
  let dir: string;
  let umask: number;
  beforeEach(() => {
    dir = tempDir('caisson-perms-');
    umask = process.umask(0);
  });
  afterEach(() => {
    process.umask(umask);
    removeTree(dir);
  });

  it('creates the state dir 0750 and the database, its WAL and shared memory 0640 under umask 0', () => {
    const state = join(dir, 'state');
    const db = openDatabase(state);
    try {
      db.prepare('CREATE TABLE IF NOT EXISTS t (x)').run();
      assert.equal(mode(state), 0o750);
      for (const f of ['caisson.db', 'caisson.db-wal', 'caisson.db-shm']) {
        assert.ok(existsSync(join(state, f)), f);
        assert.equal(mode(join(state, f)), 0o640, f);
      }
    } finally {
      db.close();
    }
  });

  it('tightens a state dir and database an earlier run left 0755/0644', () => {
    const state = join(dir, 'state');
    mkdirSync(state, { mode: 0o777 });
    chmodSync(state, 0o755);
    writeFileSync(join(state, 'caisson.db'), '');
    chmodSync(join(state, 'caisson.db'), 0o666);
    openDatabase(state).close();
    assert.equal(mode(state), 0o750);
    assert.equal(mode(join(state, 'caisson.db')), 0o640);
  });
});
