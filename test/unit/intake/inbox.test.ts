import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, renameSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { InboxWatcher } from '../../../agent/intake/inbox.js';
import type { UpdateResult } from '../../../agent/pipeline/types.js';
import { collectLog, packageBytes, removeTree, sha256, sleep, tempDir, waitFor } from './helpers.js';

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
    const { log, taken, ready } = start({ stableChecks: 3, intervalMs: 100 });
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
        await sleep(2000); // 20 checks at 100 ms: the size stands still for far longer than 3 checks
        assert.equal(taken.length, 0, 'a paused, half-copied file was taken');
      } else {
        await sleep(150);
      }
    }
    closeSync(fd);
    await waitFor(() => taken.length > 0, 'the package to be taken');
    await sleep(1000); // further checks and watcher events must not offer it again
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
    await sleep(500);
    assert.equal(taken.length, 0, '.part files are never taken');
    renameSync(part, join(dir, 'frontend-2.0.0.edgepkg'));
    await waitFor(() => taken.length > 0, 'the renamed package', 10_000);
    await sleep(300);
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
    const { taken, ready } = start();
    await ready;
    await waitFor(() => taken.length > 0, 'the existing package');
    await sleep(800);
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
    await sleep(500);
    assert.equal(taken.length, 2, 'files in processed/ and failed/ are never offered');
  });
});
