import assert from 'node:assert/strict';
import { assertFields } from '../../support/assert.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, openDatabase } from '../../../agent/store/db.js';
import { JOURNAL_DATA_VERSION, Journal, JournalDataTooNew } from '../../../agent/store/journal.js';
import { acquireStateLock } from '../../../agent/store/lock.js';
import { checkPolicy } from '../../../agent/pipeline/policy.js';
import { recoveryFor } from '../../../agent/pipeline/states.js';
import { CaissonError } from '../../../agent/errors.js';

describe('journal and history store', function () {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'caisson-journal-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('opens SQLite in WAL mode with full sync', function () {
    const db = openDatabase(dir);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('synchronous', { simple: true }), 2); // FULL
    db.close();
  });

  it('moves a schema-1 history to package IDs without losing a row', function () {
    const old = new Database(join(dir, 'caisson.db'));
    old.exec(MIGRATIONS[0]!);
    old.pragma('user_version = 1');
    old.prepare(`INSERT INTO updates (id, kind, source, package_file, package_sha256, state, outcome, started_at, closed)
                 VALUES ('u-old', 'update', 'cli', '/p/web.edgepkg', ?, 'closed:committed', 'committed', '2026-01-01T00:00:00Z', 1)`).run('d'.repeat(64));
    old.prepare(`INSERT INTO installed_packages (package_sha256, service, package_version, update_id) VALUES (?, 'web', '1.0.0', 'u-old')`).run('d'.repeat(64));
    old.close();

    const db = openDatabase(dir);
    assert.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
    const journal = new Journal(db);
    assertFields(journal.get('u-old'), { package_id: 'd'.repeat(64), outcome: 'committed' });
    assert.deepEqual(journal.committedPackage('d'.repeat(64)), { service: 'web', package_version: '1.0.0', update_id: 'u-old' });
    db.close();
  });

  it('records every transition as a step and survives reopening', function () {
    let db = openDatabase(dir);
    const journal = new Journal(db);
    const id = journal.begin({ kind: 'update', source: 'cli', packageFile: '/x.edgepkg' });
    journal.transition(id, 'staged', { patch: { package_id: 'a'.repeat(64) }, data: { stagingDir: '/s' } });
    journal.transition(id, 'switching.stop_old', { data: { plan: { x: 1 } } });
    db.close();

    db = openDatabase(dir);
    const again = new Journal(db);
    assert.deepEqual(again.openRecords().map((r) => r.id), [id]);
    assert.equal(again.get(id)!.state, 'switching.stop_old');
    assertFields(again.data(id), { stagingDir: '/s', plan: { x: 1 }, v: JOURNAL_DATA_VERSION });
    again.close(id, 'rolled_back', { code: 'health.timeout', message: 'slow', next: 'n' });
    assert.equal(again.openRecords().length, 0);
    const result = again.toResult(id);
    assert.equal(result.outcome, 'rolled_back');
    assert.deepEqual(result.error, { code: 'health.timeout', message: 'slow', next: 'n' });
    assert.deepEqual(result.steps.map((s) => s.state), ['received', 'staged', 'switching.stop_old', 'closed:rolled_back']);
    db.close();
  });

  it('keeps the highest version for the downgrade policy', function () {
    const db = openDatabase(dir);
    const journal = new Journal(db);
    journal.recordInstalled({ service: 'web', version: '1.2.0', packageId: 'b'.repeat(64), imageRef: 'w:1.2.0', updateId: 'u1', highest: '1.2.0' });
    const policy = (version: string, sha: string, allow = false) => {
      try {
        checkPolicy(journal, 'web', version, sha, allow);
        return 'ok';
      } catch (err) {
        return (err as CaissonError).code;
      }
    };
    assert.equal(policy('1.3.0', 'c'.repeat(64)), 'ok');
    assert.equal(policy('1.1.9', 'c'.repeat(64)), 'policy.downgrade');
    assert.equal(policy('1.2.0', 'c'.repeat(64)), 'policy.downgrade', 'same version, other bytes');
    assert.equal(policy('1.2.0-rc.1', 'c'.repeat(64)), 'policy.downgrade', 'prerelease is older');
    assert.equal(policy('1.1.9', 'c'.repeat(64), true), 'ok');
    db.close();
  });

  it('lets one changing process hold the state dir at a time', function () {
    const lock = acquireStateLock(dir, 'test');
    assert.throws(() => acquireStateLock(dir, 'second'), (e) => e instanceof CaissonError && /another Caisson process \(pid \d+, test/.test(e.message));
    lock.release();
    acquireStateLock(dir, 'third').release();
  });

  it('upgrades journal data on read: a version-1 plan keeps its mode fields under details', function () {
    const db = openDatabase(dir);
    const journal = new Journal(db);
    const id = journal.begin({ kind: 'update', source: 'cli', packageFile: '/x.edgepkg' });
    const v1 = { v: 1, stagingDir: '/s', plan: { mode: 'docker', service: 'web', newImageRef: 'w:2', previous: { containerId: 'c' }, details: { parkedName: 'web.caisson-prev', stopTimeoutSecs: 3 } } };
    db.prepare('UPDATE updates SET data = ? WHERE id = ?').run(JSON.stringify(v1), id);
    assert.deepEqual(journal.data(id), {
      v: JOURNAL_DATA_VERSION,
      stagingDir: '/s',
      plan: { mode: 'docker', service: 'web', newImageRef: 'w:2', previous: { containerId: 'c' }, parkedName: 'web.caisson-prev', stopTimeoutSecs: 3 },
    });
    // a write upgrades what it merges into
    journal.transition(id, 'rolling_back', { data: { originalError: { code: 'health.timeout', message: 'm', next: 'n' } } });
    const stored = JSON.parse(journal.get(id)!.data) as { v: number; plan: Record<string, unknown> };
    assert.equal(stored.v, JOURNAL_DATA_VERSION);
    assert.ok(!('details' in stored.plan));
    assert.equal(stored.plan.parkedName, 'web.caisson-prev');
    db.close();
  });

  it('refuses journal data from a newer Caisson rather than guess', function () {
    const db = openDatabase(dir);
    const journal = new Journal(db);
    const id = journal.begin({ kind: 'update', source: 'cli', packageFile: '/x.edgepkg' });
    db.prepare('UPDATE updates SET data = ? WHERE id = ?').run(JSON.stringify({ v: JOURNAL_DATA_VERSION + 1 }), id);
    assert.throws(() => journal.data(id), (e) => e instanceof JournalDataTooNew && /newer than this Caisson understands/.test(e.message));
    db.close();
  });

  it('maps each journal state to its recovery action', function () {
    assert.deepEqual(['received', 'staged', 'validated', 'loading_image', 'image_loaded'].map(recoveryFor), Array(5).fill('discard'));
    assert.deepEqual(['switching', 'switching.park_old', 'health_checking', 'rolling_back.start_old'].map(recoveryFor), Array(4).fill('reverse'));
    assert.equal(recoveryFor('committing.remove_old'), 'finish');
    assert.equal(recoveryFor('switchin.park_old'), undefined, 'an unknown state has no action');
  });
});
