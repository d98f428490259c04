import assert from 'node:assert/strict';
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanStaging, pruneHistory } from '../../../agent/intake/housekeeping.js';
import { openDatabase, type Db } from '../../../agent/store/db.js';
import { removeTree, tempDir } from '../../support/intake-helpers.js';

function addUpdate(db: Db, id: string, closed: boolean, finishedAt: string | null): void {
  db.prepare(
    `INSERT INTO updates (id, kind, source, package_file, state, started_at, finished_at, closed) VALUES (?, 'update', 'usb', 'p.edgepkg', ?, ?, ?, ?)`,
  ).run(id, closed ? 'committed' : 'switching', finishedAt ?? '2026-01-01T00:00:00.000Z', finishedAt, closed ? 1 : 0);
  db.prepare(`INSERT INTO steps (update_id, seq, state, at) VALUES (?, 1, 'received', '2026-01-01T00:00:00.000Z')`).run(id);
}

describe('housekeeping', () => {
  let dir: string;
  let db: Db;
  beforeEach(() => {
    dir = tempDir();
    db = openDatabase(dir);
  });
  afterEach(() => {
    db.close();
    removeTree(dir);
  });

  it('removes staging folders of closed or unknown updates older than an hour, never of open ones', () => {
    const now = new Date('2026-03-16T12:00:00Z');
    const old = new Date(now.getTime() - 2 * 3600_000);
    addUpdate(db, 'closed-old', true, old.toISOString());
    addUpdate(db, 'closed-new', true, now.toISOString());
    addUpdate(db, 'open-old', false, null);
    for (const [id, mtime] of [
      ['closed-old', old],
      ['closed-new', new Date(now.getTime() - 10 * 60_000)],
      ['open-old', old],
      ['unknown-old', old],
    ] as const) {
      const d = join(dir, 'staging', id);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'image.tar'), 'x');
      utimesSync(d, mtime, mtime);
    }
    const removed = cleanStaging(db, dir, now).sort();
    assert.deepEqual(removed, ['closed-old', 'unknown-old']);
    assert.equal(existsSync(join(dir, 'staging', 'closed-new')), true);
    assert.equal(existsSync(join(dir, 'staging', 'open-old')), true);
  });

  it('prunes closed history beyond the retention, with its steps', () => {
    const now = new Date('2026-03-16T12:00:00Z');
    addUpdate(db, 'ancient', true, '2025-01-01T00:00:00.000Z');
    addUpdate(db, 'recent', true, '2026-03-01T00:00:00.000Z');
    addUpdate(db, 'open', false, null);
    assert.equal(pruneHistory(db, 30, now), 1);
    const ids = (db.prepare('SELECT id FROM updates ORDER BY id').all() as { id: string }[]).map((r) => r.id);
    assert.deepEqual(ids, ['open', 'recent']);
    const steps = db.prepare("SELECT count(*) AS n FROM steps WHERE update_id = 'ancient'").get() as { n: number };
    assert.equal(steps.n, 0);
  });
});
