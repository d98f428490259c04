// A stick that stops answering while a package is read from it fails that package after
// StageLimits.stallMs, instead of holding the pipeline (and the agent's queue) for ever.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaissonError } from '../../../agent/errors.js';
import { stagePackage } from '../../../agent/package/reader.js';
import { DEFAULT_STAGE_LIMITS } from '../../../agent/package/types.js';
import { fuseAvailable, mountHungStick, type HungStick } from '../../support/hung-stick.js';

describe('package reader: a medium that stops answering', function () {
  this.timeout(30_000);
  let dir: string;
  let hung: HungStick | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'caisson-stalled-'));
  });
  afterEach(async () => {
    await hung?.release();
    hung = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails the package with package.read_failed after the stall limit; the event loop keeps running', async () => {
    assert.ok(fuseAvailable(), 'this test needs /dev/fuse (a real filesystem that stops answering)');
    hung = await mountHungStick(join(dir, 'stick'));
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 20);
    try {
      const err = await stagePackage(join(hung.dir, 'web-1.1.0.edgepkg'), join(dir, 'staging'), {
        limits: { ...DEFAULT_STAGE_LIMITS, stallMs: 300 },
      }).catch((e: unknown) => e);
      assert.ok(err instanceof CaissonError, String(err));
      assert.equal(err.code, 'package.read_failed');
      assert.match(err.message, /stopped answering/);
    } finally {
      clearInterval(ticker);
    }
    assert.ok(ticks > 5, `the event loop ran only ${ticks} ticks while the medium hung`);
  });
});
