import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, renameSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { toCaissonError } from '../../../agent/errors.js';
import { InboxWatcher } from '../../../agent/intake/inbox.js';
import { stagePackage } from '../../../agent/package/reader.js';
import type { UpdateResult } from '../../../agent/pipeline/types.js';
import { collectLog, packageBytes, removeTree, sha256, sleep, tempDir, waitFor } from '../../support/intake-helpers.js';

describe('inbox: a package is taken only when complete', function () {
  this.timeout(60_000);
  let dir: string;
  let watcher: InboxWatcher | undefined;

  beforeEach(() => {
    dir = tempDir('caisson-inbox-');
  });
  afterEach(async () => {
    await watcher?.close();
    watcher = undefined;
    removeTree(dir);
  });

  function start(opts: { stableChecks?: number; intervalMs?: number } = {}) {
    const log = collectLog();
    const taken: { path: string; sha: string; size: number }[] = [];
    watcher = new InboxWatcher({
      dir,
      stableChecks: opts.stableChecks ?? 3,
      checkIntervalMs: opts.intervalMs ?? 100,
      log,
      onComplete: (path) => {
        const bytes = readFileSync(path);
        taken.push({ path, sha: sha256(bytes), size: bytes.length });
      },
    });
    return { log, taken, ready: watcher.start() };
  }

  it('a slow copy in chunks, with a pause longer than the stability window, is taken once and only after it is complete', async () => {
    const { log, taken, ready } = start({ stableChecks: 3, intervalMs: 50 });
    await ready;
    const src = packageBytes('1.2.3', { randomBytes: 256 * 1024, zeroBytes: 512 * 1024 });
    const target = join(dir, 'frontend-1.2.3.edgepkg');
    const fd = openSync(target, 'w');
    const chunk = 64 * 1024;
    // pause inside the zero run: the partial file is block-aligned and ends in zero blocks
    const pauseAt = 256 * 1024 + 512 * 3 + 128 * 1024;
    let off = 0;
    let paused = false;
    while (off < src.length) {
      const n = Math.min(chunk, src.length - off, !paused && off < pauseAt ? pauseAt - off : Infinity);
      writeSync(fd, src, off, n);
      off += n;
      if (!paused && off === pauseAt) {
        paused = true;
        await sleep(500); // 10 checks at 50 ms: the size stands still for far longer than 3 checks
        assert.equal(taken.length, 0, 'a paused, half-copied file was taken');
      } else {
        await sleep(75);
      }
    }
    closeSync(fd);
    await waitFor(() => taken.length > 0, 'the package to be taken');
    await sleep(250); // 5 more checks and any watcher events must not offer it again
    assert.equal(taken.length, 1);
    assert.equal(taken[0]!.sha, sha256(src));
    assert.equal(taken[0]!.size, src.length);
    assert.ok(
      log.lines.some((l) => l.message.includes('not a whole tar')),
      'the pause was seen as a stable size (the test exercised the dangerous case)',
    );
  });

  it('takes a package renamed from .part at once, by the rename', async () => {
    // 50 checks a second apart: the stability path would need almost a minute
    const { log, taken, ready } = start({ stableChecks: 50, intervalMs: 1000 });
    await ready;
    const src = packageBytes('2.0.0');
    const part = join(dir, 'frontend-2.0.0.edgepkg.part');
    writeFileSync(part, src);
    await sleep(250);
    assert.equal(taken.length, 0, '.part files are never taken');
    renameSync(part, join(dir, 'frontend-2.0.0.edgepkg'));
    await waitFor(() => taken.length > 0, 'the renamed package', 10_000);
    await sleep(200);
    assert.equal(taken.length, 1);
    assert.equal(taken[0]!.sha, sha256(src));
    assert.ok(log.lines.some((l) => l.meta?.why === 'renamed from .part'));
  });

  it('finds complete packages already in the inbox at start, ignores other files and links', async () => {
    writeFileSync(join(dir, 'old-1.0.0.edgepkg'), packageBytes('1.0.0'));
    writeFileSync(join(dir, 'notes.txt'), 'hello');
    writeFileSync(join(dir, '.hidden.edgepkg'), packageBytes('1.0.1'));
    writeFileSync(join(dir, 'elsewhere.bin'), packageBytes('1.0.2'));
    symlinkSync(join(dir, 'elsewhere.bin'), join(dir, 'link-1.0.2.edgepkg'));
    const { taken, ready } = start({ intervalMs: 50 });
    await ready;
    await waitFor(() => taken.length > 0, 'the existing package');
    await sleep(200); // 4 more checks: nothing else is offered
    assert.deepEqual(
      taken.map((t) => t.path),
      [join(dir, 'old-1.0.0.edgepkg')],
    );
  });

  it('moves a processed package to processed/ or failed/ with its json and txt report', async () => {
    const { taken, ready } = start();
    await ready;
    writeFileSync(join(dir, 'ok-1.0.0.edgepkg'), packageBytes('1.0.0'));
    writeFileSync(join(dir, 'bad-1.0.1.edgepkg'), packageBytes('1.0.1'));
    await waitFor(() => taken.length === 2, 'both packages');
    const result = (file: string, outcome: UpdateResult['outcome']): UpdateResult => ({
      update_id: `u-${outcome}`,
      outcome,
      source: 'inbox',
      package_file: join(dir, file),
      service: 'frontend',
      from_version: '1.0.0',
      to_version: '1.0.1',
      started_at: '2026-03-16T18:30:00.000Z',
      finished_at: '2026-03-16T18:31:00.000Z',
      steps: [],
      ...(outcome === 'committed' ? {} : { error: { code: 'health.timeout', message: 'too slow', next: 'Tell the vendor.' } }),
    });
    watcher!.finish(join(dir, 'ok-1.0.0.edgepkg'), result('ok-1.0.0.edgepkg', 'committed'));
    watcher!.finish(join(dir, 'bad-1.0.1.edgepkg'), result('bad-1.0.1.edgepkg', 'rolled_back'));
    assert.deepEqual(readdirSync(join(dir, 'processed')).sort(), [
      '20260316T183100Z-ok-1.0.0.edgepkg',
      '20260316T183100Z-ok-1.0.0.json',
      '20260316T183100Z-ok-1.0.0.txt',
    ]);
    assert.deepEqual(readdirSync(join(dir, 'failed')).sort(), [
      '20260316T183100Z-bad-1.0.1.edgepkg',
      '20260316T183100Z-bad-1.0.1.json',
      '20260316T183100Z-bad-1.0.1.txt',
    ]);
    const json = JSON.parse(readFileSync(join(dir, 'failed', '20260316T183100Z-bad-1.0.1.json'), 'utf8'));
    assert.equal(json.result, 'FAILED');
    assert.equal(json.update.error.code, 'health.timeout');
    assert.match(readFileSync(join(dir, 'failed', '20260316T183100Z-bad-1.0.1.txt'), 'utf8'), /Result: FAILED/);
    assert.equal(existsSync(join(dir, 'ok-1.0.0.edgepkg')), false);
    await sleep(300);
    assert.equal(taken.length, 2, 'files in processed/ and failed/ are never offered');
  });
});

describe('inbox: a file that can never become a package does not wait silently', function () {
  this.timeout(60_000);
  let dir: string;
  let stagingRoot: string;
  let watcher: InboxWatcher | undefined;
  /** Readings still running when a test ends: awaited before the watcher closes. */
  let readings: Promise<void>[] = [];

  beforeEach(() => {
    dir = tempDir('caisson-inbox-');
    stagingRoot = tempDir('caisson-inbox-staging-');
  });
  afterEach(async () => {
    await Promise.allSettled(readings);
    readings = [];
    await watcher?.close();
    watcher = undefined;
    removeTree(dir);
    removeTree(stagingRoot);
  });

  /**
   * The inbox with the real package reader behind it, as the pipeline runs it first: what
   * the reader refuses is finished as FAILED with the reader's code, like any failure.
   */
  function start(opts: { incompleteTimeoutMs?: number } = {}) {
    const log = collectLog();
    const taken: { path: string; at: number }[] = [];
    const started = Date.now();
    let n = 0;
    const w = new InboxWatcher({
      dir,
      stableChecks: 3,
      checkIntervalMs: 100,
      ...(opts.incompleteTimeoutMs !== undefined ? { incompleteTimeoutMs: opts.incompleteTimeoutMs } : {}),
      log,
      onComplete: (path) => {
        taken.push({ path, at: Date.now() - started });
        const reading = (async () => {
          let error: UpdateResult['error'];
          try {
            await stagePackage(path, join(stagingRoot, `staging-${n++}`));
          } catch (err) {
            const e = toCaissonError(err);
            error = { code: e.code, message: e.message, next: e.next };
          }
          const now = new Date().toISOString();
          w.finish(path, {
            update_id: `u-${n}`,
            outcome: error ? 'rejected' : 'committed',
            source: 'inbox',
            package_file: path,
            started_at: now,
            finished_at: now,
            steps: [],
            ...(error ? { error } : {}),
          });
        })();
        readings.push(reading);
      },
    });
    watcher = w;
    return { log, taken, ready: w.start() };
  }

  const failedCodes = () =>
    readdirSync(join(dir, 'failed'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => (JSON.parse(readFileSync(join(dir, 'failed', f), 'utf8')) as { update: { error: { code: string } } }).update.error.code);

  it('random bytes copied in without the .part rename go to failed/ as package.not_tar once stable', async () => {
    const { log, taken, ready } = start({ incompleteTimeoutMs: 3_600_000 });
    await ready;
    writeFileSync(join(dir, 'junk.edgepkg'), randomBytes(5000));
    await waitFor(() => existsSync(join(dir, 'failed')) && failedCodes().length === 1, 'the junk file in failed/', 10_000);
    assert.deepEqual(failedCodes(), ['package.not_tar']);
    assert.equal(taken.length, 1);
    assert.ok(taken[0]!.at >= 200, 'taken only after the stability checks');
    assert.equal(existsSync(join(dir, 'junk.edgepkg')), false);
    assert.ok(readdirSync(join(dir, 'failed')).some((f) => f.endsWith('.edgepkg')), 'the file moved to failed/');
    assert.ok(log.lines.some((l) => l.level === 'warn' && l.message.includes('not a tar')));
  });

  it('a stable but incomplete tar waits, then goes to failed/ as package.truncated after the timeout', async () => {
    const { log, taken, ready } = start({ incompleteTimeoutMs: 1_000 });
    await ready;
    const whole = packageBytes('1.0.0', { randomBytes: 64 * 1024 });
    writeFileSync(join(dir, 'half-1.0.0.edgepkg'), whole.subarray(0, 560)); // a whole first header, then it stops inside its entry
    await sleep(600);
    assert.equal(taken.length, 0, 'failed before the timeout');
    assert.ok(log.lines.some((l) => l.message.includes('waiting up to 1 s')), 'the wait is logged');
    await waitFor(() => existsSync(join(dir, 'failed')) && failedCodes().length === 1, 'the incomplete file in failed/', 10_000);
    assert.deepEqual(failedCodes(), ['package.truncated']);
    assert.ok(taken[0]!.at >= 1_000, `taken after ${taken[0]!.at} ms, before the timeout`);
    assert.ok(log.lines.some((l) => l.level === 'warn' && l.message.includes('never became a whole tar')));
  });

  it('a copy that keeps growing is not failed by the timeout', async () => {
    const { log, taken, ready } = start({ incompleteTimeoutMs: 600 });
    await ready;
    const src = packageBytes('1.0.0', { randomBytes: 64 * 1024 });
    const target = join(dir, 'slow-1.0.0.edgepkg');
    const fd = openSync(target, 'w');
    // 1.5 s of copying, a write every 150 ms: never unchanged for the 0.6 s timeout
    const step = Math.ceil(src.length / 10);
    for (let off = 0; off < src.length; off += step) {
      assert.equal(taken.length, 0, `taken at ${off} bytes, while still being copied`);
      writeSync(fd, src, off, Math.min(step, src.length - off));
      await sleep(150);
    }
    closeSync(fd);
    await waitFor(() => taken.length === 1, 'the finished copy');
    assert.ok(log.lines.some((l) => l.meta?.why === 'size stable and a whole tar'), 'taken as a whole tar');
    assert.ok(!log.lines.some((l) => l.message.includes('never became a whole tar')));
  });
});
