// Reports on sticks crafted to make root write elsewhere or to freeze the agent, on real
// mounted filesystems (tmpfs, and a FUSE mount that never answers). Needs root.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { UpdateResult } from '../../../agent/pipeline/types.js';
import { StickReports } from '../../../agent/report/stick.js';
import { reportBaseName } from '../../../agent/report/format.js';
import { StickTimeoutError } from '../../../agent/report/stick-io.js';
import { listStickPackages } from '../../../agent/intake/media.js';
import { isMountPoint } from '../../../agent/intake/mounts.js';
import { openDatabase, type Db } from '../../../agent/store/db.js';
import { mountStick, removeTree, tempDir, unmount } from '../../support/intake-helpers.js';
import { fuseAvailable, mountHungStick, type HungStick } from '../../support/hung-stick.js';

function result(over: Partial<UpdateResult> = {}): UpdateResult {
  const now = new Date().toISOString();
  return {
    update_id: 'u1',
    outcome: 'rejected',
    source: 'usb',
    package_file: '/media/caisson/AAAA-BBBB/web-1.0.0.edgepkg',
    error: { code: 'package.not_tar', message: 'not a tar', next: 'Rebuild it.' },
    started_at: now,
    finished_at: now,
    steps: [],
    ...over,
  };
}

describe('hostile sticks: reports never leave the stick, a stick never freezes the agent', function () {
  this.timeout(60_000);
  let dir: string;
  let stick: string;
  let db: Db;
  let reports: StickReports;
  let hung: HungStick | undefined;

  beforeEach(() => {
    dir = tempDir('caisson-hostile-stick-');
    stick = join(dir, 'media', 'AAAA-BBBB');
    db = openDatabase(join(dir, 'state'));
    reports = new StickReports(db, {
      resultFileName: 'caisson-result.txt',
      reportsDirName: 'caisson-reports',
      isMounted: (d) => isMountPoint(d),
      timeoutMs: 3000,
    });
  });
  afterEach(async () => {
    await hung?.release();
    hung = undefined;
    unmount(stick);
    db.close();
    removeTree(dir);
  });

  it('caisson-reports as a link to a folder elsewhere: nothing is written there, the reports stay pending', async () => {
    mountStick(stick);
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    symlinkSync(outside, join(stick, 'caisson-reports'));
    reports.record('AAAA-BBBB', result());
    const d = await reports.deliver('AAAA-BBBB', stick);
    assert.equal(d.written, false);
    assert.match(String(d.error), /caisson-reports on the stick is not a folder/);
    assert.deepEqual(readdirSync(outside), [], 'root wrote outside the stick');
    assert.equal(reports.pending('AAAA-BBBB').length, 1);
  });

  it('caisson-reports as a link to a folder that does not exist yet: not created, not followed', async () => {
    mountStick(stick);
    const outside = join(dir, 'not-yet');
    symlinkSync(outside, join(stick, 'caisson-reports'));
    reports.record('AAAA-BBBB', result());
    assert.equal((await reports.deliver('AAAA-BBBB', stick)).written, false);
    assert.equal(existsSync(outside), false);
  });

  it('the result file as a link to a file elsewhere: the link is replaced, the target untouched', async () => {
    mountStick(stick);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'keep me');
    symlinkSync(victim, join(stick, 'caisson-result.txt'));
    reports.record('AAAA-BBBB', result());
    assert.equal((await reports.deliver('AAAA-BBBB', stick)).written, true);
    assert.equal(readFileSync(victim, 'utf8'), 'keep me');
    assert.ok(lstatSync(join(stick, 'caisson-result.txt')).isFile());
  });

  it('FIFOs and /dev/zero links named like the coming report: never opened, the report takes the next free name', async () => {
    mountStick(stick);
    const r = result();
    const base = reportBaseName(r);
    const rd = join(stick, 'caisson-reports');
    mkdirSync(rd);
    execFileSync('mkfifo', [join(rd, `${base}.json`), join(rd, `${base}.txt`)]);
    symlinkSync('/dev/zero', join(rd, `${base}-2.json`));
    symlinkSync('/dev/zero', join(rd, `${base}-2.txt`));
    mkdirSync(join(rd, `${base}-3.json`));
    reports.record('AAAA-BBBB', r);
    const started = Date.now();
    const d = await reports.deliver('AAAA-BBBB', stick);
    assert.equal(d.written, true, String(d.error));
    assert.ok(Date.now() - started < 2500, 'the delivery waited on a FIFO or a link');
    assert.ok(readFileSync(join(rd, `${base}-4.json`), 'utf8').includes('"update_id": "u1"'));
    assert.ok(lstatSync(join(rd, `${base}.json`)).isFIFO(), 'the FIFO is left as it was');
    assert.ok(lstatSync(join(rd, `${base}-2.json`)).isSymbolicLink(), 'the link is left as it was');
    assert.equal(existsSync(join(rd, `${base}-3.txt`)), false, 'no half-named set is left behind');
  });

  it('lists only regular *.edgepkg files: links, FIFOs and folders with that name are not packages', async () => {
    mountStick(stick);
    writeFileSync(join(stick, 'a.edgepkg'), 'x');
    writeFileSync(join(stick, 'B.EDGEPKG'), 'x');
    writeFileSync(join(stick, '.hidden.edgepkg'), 'x');
    symlinkSync('/dev/zero', join(stick, 'zero.edgepkg'));
    symlinkSync(join(stick, 'a.edgepkg'), join(stick, 'link.edgepkg'));
    execFileSync('mkfifo', [join(stick, 'fifo.edgepkg')]);
    mkdirSync(join(stick, 'dir.edgepkg'));
    assert.deepEqual(await listStickPackages(stick), [join(stick, 'B.EDGEPKG'), join(stick, 'a.edgepkg')]);
  });

  it('refuses the empty folder a removed stick leaves behind', async () => {
    mkdirSync(stick, { recursive: true });
    await assert.rejects(listStickPackages(stick), /not mounted/);
  });

  it('a stick that stops answering: listing and writing give up after the deadline, the main thread never stops', async () => {
    assert.ok(fuseAvailable(), 'this test needs /dev/fuse (a real filesystem that stops answering)');
    hung = await mountHungStick(stick);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 50);
    try {
      const started = Date.now();
      await assert.rejects(listStickPackages(stick, 1000), StickTimeoutError);
      const took = Date.now() - started;
      assert.ok(took >= 900 && took < 5000, `gave up after ${took} ms`);
      const quick = new StickReports(db, { resultFileName: 'caisson-result.txt', reportsDirName: 'caisson-reports', isMounted: (d) => isMountPoint(d), timeoutMs: 1000 });
      quick.record('AAAA-BBBB', result());
      const d = await quick.deliver('AAAA-BBBB', stick);
      assert.equal(d.written, false);
      assert.ok(d.error instanceof StickTimeoutError, String(d.error));
      assert.equal(quick.pending('AAAA-BBBB').length, 1, 'the report is kept for a next insertion');
    } finally {
      clearInterval(ticker);
    }
    assert.ok(ticks > 25, `the event loop ran only ${ticks} ticks in ~2 s`);
  });
});
