// The ciphertext's digest on a worker thread (hash-thread.ts): the same digest as on this
// thread, whatever mix of shared and private buffers it is fed; a shared buffer is released
// only once hashed, and every held buffer is released when the worker is closed early.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { HASH_THREAD_MIN_BYTES, ThreadedHash } from '../../../agent/package/hash-thread.js';

describe('ThreadedHash', () => {
  it('hashes small entries on this thread and large ones on a worker, to the same digest', async () => {
    const shared = Buffer.from(new SharedArrayBuffer(3 * 65536));
    randomBytes(shared.length).copy(shared);
    const pieces = [shared.subarray(0, 1000), randomBytes(70000), shared.subarray(1000, 65536), shared.subarray(65536), Buffer.alloc(0), randomBytes(5)];
    const want = createHash('sha256');
    for (const p of pieces) want.update(p);
    const expected = want.digest('hex');

    for (const [size, threaded] of [[HASH_THREAD_MIN_BYTES - 1, false], [HASH_THREAD_MIN_BYTES, true]] as const) {
      const h = new ThreadedHash(size, undefined, shared.buffer as SharedArrayBuffer);
      try {
        assert.equal(h.threaded, threaded);
        let released = 0;
        for (const p of pieces) h.update(p, () => released++);
        assert.equal(await h.digest(), expected);
        assert.equal(released, pieces.length);
      } finally {
        h.close();
      }
    }
  });

  it('releases the buffers it holds when closed before the end, and refuses more', async () => {
    const shared = Buffer.from(new SharedArrayBuffer(1 << 20));
    const h = new ThreadedHash(1, 0, shared.buffer as SharedArrayBuffer);
    let released = 0;
    for (let i = 0; i < 8; i++) h.update(shared, () => released++);
    h.close();
    assert.equal(released, 8);
    assert.throws(() => h.update(shared, () => released++), { code: 'internal.error' });
    assert.equal(released, 9);
    await assert.rejects(h.digest(), { code: 'internal.error' });
  });
});
