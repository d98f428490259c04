import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { UpdateResult } from '../../../agent/pipeline/types.js';
import { NO_PACKAGE_NOTE, StickReports, batchSucceeded } from '../../../agent/report/stick.js';
import { resultLine, reportBaseName } from '../../../agent/report/format.js';
import { isMountPoint } from '../../../agent/intake/mounts.js';
import { openDatabase, type Db } from '../../../agent/store/db.js';
import { mountStick, removeTree, remount, tempDir, unmount } from '../../support/intake-helpers.js';

function result(over: Partial<UpdateResult> = {}): UpdateResult {
  return {
    update_id: 'u1',
    outcome: 'committed',
    source: 'usb',
    package_file: '/media/caisson/AAAA-BBBB/frontend-1.2.3.edgepkg',
    package_id: 'a'.repeat(64),
    package_version: '1.2.3',
    service: 'frontend',
    from_version: '1.2.2',
    to_version: '1.2.3',
    started_at: '2026-03-16T18:30:00.000Z',
    finished_at: '2026-03-16T18:30:42.123Z',
    steps: [{ state: 'received', at: '2026-03-16T18:30:00.000Z' }],
    ...over,
  };
}

describe('stick reports', () => {
  let dir: string;
  let stick: string;
  let db: Db;
  let reports: StickReports;
  beforeEach(() => {
    dir = tempDir('caisson-stick-');
    stick = join(dir, 'media', 'AAAA-BBBB');
    db = openDatabase(join(dir, 'state'));
    reports = new StickReports(db, { resultFileName: 'caisson-result.txt', reportsDirName: 'caisson-reports', isMounted: (d) => isMountPoint(d) });
  });
  afterEach(() => {
    unmount(stick);
    db.close();
    removeTree(dir);
  });

  it('formats one line per package: OK / FAILED / ALREADY INSTALLED, file, service, versions, next step', () => {
    assert.equal(
      resultLine(result()),
      'OK | frontend-1.2.3.edgepkg | service frontend | 1.2.2 -> 1.2.3 | Done: frontend runs 1.2.3. Remove the stick.',
    );
    const failed = resultLine(
      result({
        outcome: 'rolled_back',
        error: { code: 'health.timeout', message: 'not healthy\nwithin 30 s', next: 'Report this to the vendor.' },
      }),
    );
    assert.match(failed, /^FAILED \| frontend-1\.2\.3\.edgepkg \| service frontend \| 1\.2\.2 -> 1\.2\.3 \| rolled back to 1\.2\.2; health\.timeout: not healthy within 30 s\. Next: Report this to the vendor\.$/);
    assert.match(resultLine(result({ outcome: 'already_installed' })), /^ALREADY INSTALLED \| .*already installed/);
    assert.equal(reportBaseName(result()), '20260316T183042Z-frontend-1.2.3');
    assert.equal(reportBaseName(result({ package_file: '/x/we ird/../$(rm -rf).edgepkg' })), '20260316T183042Z-__rm_-rf_');
  });

  it('writes the result file and a json + txt report per package on a writable stick', async () => {
    mountStick(stick);
    reports.record('AAAA-BBBB', result());
    reports.record('AAAA-BBBB', result({ update_id: 'u2', outcome: 'rejected', package_file: '/m/bad-2.0.0.edgepkg', error: { code: 'signature.invalid', message: 'bad sig', next: 'Get a signed one.' } }));
    const d = await reports.deliver('AAAA-BBBB', stick);
    assert.equal(d.written, true);
    assert.equal(batchSucceeded(d.results), false);
    const lines = readFileSync(join(stick, 'caisson-result.txt'), 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^OK \| frontend-1\.2\.3\.edgepkg/);
    assert.match(lines[1]!, /^FAILED \| bad-2\.0\.0\.edgepkg .*signature\.invalid/);
    assert.deepEqual(readdirSync(join(stick, 'caisson-reports')).sort(), [
      '20260316T183042Z-bad-2.0.0.json',
      '20260316T183042Z-bad-2.0.0.txt',
      '20260316T183042Z-frontend-1.2.3.json',
      '20260316T183042Z-frontend-1.2.3.txt',
    ]);
    const json = JSON.parse(readFileSync(join(stick, 'caisson-reports', '20260316T183042Z-frontend-1.2.3.json'), 'utf8'));
    assert.equal(json.result, 'OK');
    assert.equal(json.medium_uuid, 'AAAA-BBBB');
    assert.equal(json.update.to_version, '1.2.3');
    assert.equal(reports.pending('AAAA-BBBB').length, 0, 'written reports are no longer pending');
  });

  it("writes the device's ID and public key into every report on the stick", async () => {
    mountStick(stick);
    const device = { id: 'k3xq-7h2m-pa4d-6wzt', public_key: Buffer.alloc(32, 7).toString('base64') };
    const withDevice = new StickReports(db, { resultFileName: 'caisson-result.txt', reportsDirName: 'caisson-reports', isMounted: (d) => isMountPoint(d), device });
    withDevice.record('AAAA-BBBB', result());
    withDevice.record('AAAA-BBBB', result({ update_id: 'u2', outcome: 'rejected', package_file: '/m/bad-2.0.0.edgepkg', error: { code: 'manifest.not_for_this_device', message: 'x', next: 'y' } }));
    assert.equal((await withDevice.deliver('AAAA-BBBB', stick)).written, true);
    for (const name of ['20260316T183042Z-frontend-1.2.3', '20260316T183042Z-bad-2.0.0']) {
      assert.deepEqual(JSON.parse(readFileSync(join(stick, 'caisson-reports', `${name}.json`), 'utf8')).device, device, name);
      const text = readFileSync(join(stick, 'caisson-reports', `${name}.txt`), 'utf8');
      assert.match(text, /^Device ID: k3xq-7h2m-pa4d-6wzt$/m, name);
      assert.ok(text.includes(`Device public key: ${device.public_key} (X25519)`), name);
    }
  });

  it('keeps reports pending on a read-only stick and writes them when it comes back writable', async () => {
    mountStick(stick, { readOnly: true });
    reports.record('AAAA-BBBB', result());
    const first = await reports.deliver('AAAA-BBBB', stick);
    assert.equal(first.written, false);
    // (mkdir -p on a read-only filesystem reports ENOENT in Node)
    assert.match(String(first.error), /EROFS|ENOENT/);
    assert.equal(reports.pending('AAAA-BBBB').length, 1);
    remount(stick, 'rw');
    reports.record('AAAA-BBBB', result({ update_id: 'u2', outcome: 'already_installed', finished_at: '2026-03-17T08:00:00.000Z' }));
    const second = await reports.deliver('AAAA-BBBB', stick);
    assert.equal(second.written, true);
    const lines = readFileSync(join(stick, 'caisson-result.txt'), 'utf8').trimEnd().split('\n');
    assert.deepEqual(
      lines.map((l) => l.split(' | ')[0]),
      ['OK', 'ALREADY INSTALLED'],
    );
    assert.equal(readdirSync(join(stick, 'caisson-reports')).length, 4);
    assert.equal(reports.pendingCount(), 0);
  });

  it('gives reports of the same package in the same second their own names', async () => {
    mountStick(stick);
    reports.record('AAAA-BBBB', result({ update_id: 'first' }));
    assert.equal((await reports.deliver('AAAA-BBBB', stick)).written, true);
    reports.record('AAAA-BBBB', result({ update_id: 'second', outcome: 'already_installed' }));
    reports.record('AAAA-BBBB', result({ update_id: 'third', outcome: 'already_installed' }));
    assert.equal((await reports.deliver('AAAA-BBBB', stick)).written, true);
    const names = readdirSync(join(stick, 'caisson-reports')).filter((n) => n.endsWith('.json')).sort();
    assert.deepEqual(names, ['20260316T183042Z-frontend-1.2.3-2.json', '20260316T183042Z-frontend-1.2.3-3.json', '20260316T183042Z-frontend-1.2.3.json']);
    const ids = names.map((n) => JSON.parse(readFileSync(join(stick, 'caisson-reports', n), 'utf8')).update.update_id);
    assert.deepEqual(ids, ['second', 'third', 'first']);
  });

  it('never writes into the empty folder of a removed stick', async () => {
    reports.record('AAAA-BBBB', result());
    const d = await reports.deliver('AAAA-BBBB', join(dir, 'media', 'AAAA-BBBB'));
    assert.equal(d.written, false);
    assert.equal(existsSync(join(dir, 'media', 'AAAA-BBBB', 'caisson-result.txt')), false);
    assert.equal(reports.pending('AAAA-BBBB').length, 1);
  });

  it('says so when a stick has no package', async () => {
    mountStick(stick);
    const d = await reports.deliver('AAAA-BBBB', stick, NO_PACKAGE_NOTE);
    assert.equal(d.written, true);
    assert.equal(batchSucceeded(d.results), false);
    assert.match(readFileSync(join(stick, 'caisson-result.txt'), 'utf8'), /^NO PACKAGE \|/);
  });
});
