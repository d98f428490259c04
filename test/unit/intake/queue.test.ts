// The queue with the fake pipeline (helpers.ts): ordering and once-only depend only on
// the answers the pipeline gives, so a real pipeline adds nothing here.
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { UpdateQueue, type QueueJob } from '../../../agent/intake/queue.js';
import type { UpdateResult } from '../../../agent/pipeline/types.js';
import { FakePipeline, removeTree, tempDir, writePackage } from '../../support/intake-helpers.js';

describe('update queue', () => {
  let dir: string;
  let pipeline: FakePipeline;
  beforeEach(() => {
    dir = tempDir();
    pipeline = new FakePipeline(join(dir, 'state'));
  });
  afterEach(() => {
    pipeline.close();
    removeTree(dir);
  });

  function job(key: string, path: string, out: { key: string; result?: UpdateResult; error?: unknown; skipped?: boolean }[], cancelled?: () => boolean): QueueJob {
    return {
      key,
      request: { packagePath: path, source: key.startsWith('usb') ? 'usb' : 'inbox' },
      cancelled,
      done: (o) => void out.push({ key, ...o }),
    };
  }

  it('runs one at a time, first in first out', async () => {
    const q = new UpdateQueue((r) => pipeline.run(r));
    const out: { key: string; result?: UpdateResult }[] = [];
    for (let i = 0; i < 5; i++) {
      const p = join(dir, `p-1.0.${i}.edgepkg`);
      writePackage(p, `1.0.${i}`);
      assert.equal(q.push(job(`inbox:${p}`, p, out)), true);
    }
    await q.idle();
    assert.deepEqual(
      out.map((o) => o.result?.package_version),
      ['1.0.0', '1.0.1', '1.0.2', '1.0.3', '1.0.4'],
    );
    assert.equal(pipeline.maxActive, 1);
  });

  it('runs the same occurrence once, and each occurrence of the same package once (the second: already installed)', async () => {
    const q = new UpdateQueue((r) => pipeline.run(r));
    const out: { key: string; result?: UpdateResult }[] = [];
    const onStickA = join(dir, 'a-frontend-1.1.0.edgepkg');
    writePackage(onStickA, '1.1.0');
    const onStickB = join(dir, 'b-frontend-1.1.0.edgepkg');
    copyFileSync(onStickA, onStickB);
    const inInbox = join(dir, 'i-frontend-1.1.0.edgepkg');
    copyFileSync(onStickA, inInbox);
    assert.equal(q.push(job(`usb:A:${onStickA}`, onStickA, out)), true);
    assert.equal(q.push(job(`usb:A:${onStickA}`, onStickA, out)), false, 'a repeated event for the same file');
    assert.equal(q.push(job(`usb:B:${onStickB}`, onStickB, out)), true);
    assert.equal(q.push(job(`inbox:${inInbox}`, inInbox, out)), true);
    await q.idle();
    assert.deepEqual(
      out.map((o) => [o.key.split(':')[0], o.result?.outcome]),
      [
        ['usb', 'committed'],
        ['usb', 'already_installed'],
        ['inbox', 'already_installed'],
      ],
    );
    assert.equal(pipeline.runs.length, 3);
    // once finished, the same occurrence may come again (a re-inserted stick)
    assert.equal(q.push(job(`usb:A:${onStickA}`, onStickA, out)), true);
    await q.idle();
    assert.equal(out[3]!.result?.outcome, 'already_installed');
  });

  it('skips cancelled jobs and keeps going when the pipeline throws', async () => {
    pipeline.throwOn = /explode/;
    const q = new UpdateQueue((r) => pipeline.run(r));
    const out: { key: string; result?: UpdateResult; error?: unknown; skipped?: boolean }[] = [];
    const a = join(dir, 'explode-1.0.0.edgepkg');
    const b = join(dir, 'gone-1.0.1.edgepkg');
    const c = join(dir, 'fine-1.0.2.edgepkg');
    writePackage(a, '1.0.0');
    writePackage(b, '1.0.1');
    writePackage(c, '1.0.2');
    q.push(job('inbox:a', a, out));
    q.push(job('usb:X:b', b, out, () => true));
    q.push(job('inbox:c', c, out));
    await q.idle();
    assert.equal(out.length, 3);
    assert.match(String(out[0]!.error), /engine exploded/);
    assert.equal(out[1]!.skipped, true);
    assert.equal(out[2]!.result?.outcome, 'committed');
    assert.equal(pipeline.runs.length, 2, 'the cancelled job never reached the pipeline');
  });

  it('stop() drops queued jobs and waits for the running one', async () => {
    pipeline.delayMs = 300;
    const q = new UpdateQueue((r) => pipeline.run(r));
    const out: { key: string; result?: UpdateResult }[] = [];
    for (let i = 0; i < 3; i++) {
      const p = join(dir, `s-1.0.${i}.edgepkg`);
      writePackage(p, `1.0.${i}`);
      q.push(job(`inbox:${p}`, p, out));
    }
    await new Promise((r) => setTimeout(r, 50));
    const dropped = await q.stop();
    assert.equal(dropped.length, 2);
    assert.equal(out.length, 1, 'the running job finished before stop() resolved');
    assert.equal(out[0]!.result?.outcome, 'committed');
    assert.equal(q.push(job('inbox:late', join(dir, 's-1.0.0.edgepkg'), out)), false);
  });
});
