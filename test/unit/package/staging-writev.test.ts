// writeAllv: the decrypting pass hands a MiB of plaintext to the staging copy as 16 separate
// chunks; whatever the kernel takes per call, every byte lands once and in order.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { writeAllv } from '../../../agent/package/staging-area.js';
import { CaissonError } from '../../../agent/errors.js';

/** A file handle whose writev takes at most `limit` bytes per call, like a short write. */
function shortWriter(limit: number): { fh: FileHandle; out: () => Buffer; calls: () => number } {
  const got: Buffer[] = [];
  let calls = 0;
  const fh = {
    async writev(buffers: Buffer[]) {
      calls++;
      let room = limit;
      for (const b of buffers) {
        const n = Math.min(room, b.length);
        got.push(Buffer.from(b.subarray(0, n)));
        room -= n;
        if (room === 0) break;
      }
      return { bytesWritten: limit - room, buffers };
    },
    async write(b: Buffer, off: number, len: number) {
      calls++;
      const n = Math.min(limit, len);
      got.push(Buffer.from(b.subarray(off, off + n)));
      return { bytesWritten: n, buffer: b };
    },
  } as unknown as FileHandle;
  return { fh, out: () => Buffer.concat(got), calls: () => calls };
}

describe('writeAllv (staging copy of decrypted chunks)', () => {
  it('writes every piece once and in order, across short writes that end inside a piece or on its edge', async () => {
    const pieces = [randomBytes(65536), randomBytes(10), randomBytes(65536), randomBytes(1)];
    for (const limit of [1 << 20, 65536, 65546, 1000, 7]) {
      const w = shortWriter(limit);
      await writeAllv(w.fh, pieces, '/staging');
      assert.deepEqual(w.out(), Buffer.concat(pieces), `limit ${limit}`);
    }
    const whole = shortWriter(1 << 20);
    await writeAllv(whole.fh, pieces, '/staging');
    assert.equal(whole.calls(), 1);
  });

  it('turns a failed write into a staging error (disk.insufficient when the disk is full)', async () => {
    const fh = { writev: async () => Promise.reject(Object.assign(new Error('no space'), { code: 'ENOSPC' })) } as unknown as FileHandle;
    await assert.rejects(writeAllv(fh, [Buffer.alloc(1), Buffer.alloc(1)], '/staging'), (err: unknown) => err instanceof CaissonError && err.code === 'disk.insufficient');
  });
});
