import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isWholeTar, tarFileState } from '../../../agent/intake/tarcheck.js';
import { packageBytes, removeTree, tempDir } from '../../support/intake-helpers.js';

describe('whole-tar check', () => {
  let dir: string;
  before(() => {
    dir = tempDir();
  });
  after(() => removeTree(dir));

  const check = (bytes: Buffer) => {
    const f = join(dir, 'p.edgepkg');
    writeFileSync(f, bytes);
    return isWholeTar(f);
  };

  it('accepts a complete package tar', async () => {
    assert.equal(await check(packageBytes('1.0.0', { zeroBytes: 64 * 1024 })), true);
  });

  it('rejects every block-aligned prefix, even ones that end in zero blocks', async () => {
    // the image entry ends in 64 KiB of zeros: a copy paused there has a stable size,
    // a block-aligned length and two zero blocks at its end, and is still incomplete
    const full = packageBytes('1.0.0', { randomBytes: 2048, zeroBytes: 64 * 1024 });
    let endsInZeros = 0;
    for (let len = 512; len < full.length - 1024; len += 512) {
      const prefix = full.subarray(0, len);
      if (prefix.subarray(len - 1024).every((b) => b === 0)) endsInZeros++;
      assert.equal(await check(prefix), false, `prefix of ${len} bytes`);
    }
    assert.ok(endsInZeros > 100, 'the test covers prefixes that end in zero blocks');
  });

  it('rejects unaligned lengths, garbage and empty files', async () => {
    const full = packageBytes('1.0.0');
    assert.equal(await check(full.subarray(0, full.length - 100)), false);
    assert.equal(await check(Buffer.alloc(0)), false);
    assert.equal(await check(Buffer.alloc(4096, 0x41)), false);
  });

  it('tells a file that can never become a tar (its first header is wrong) from one still being copied', async () => {
    const state = (bytes: Buffer) => {
      const f = join(dir, 's.edgepkg');
      writeFileSync(f, bytes);
      return tarFileState(f);
    };
    const full = packageBytes('1.0.0');
    assert.equal(await state(full), 'whole');
    assert.equal(await state(Buffer.alloc(5000, 0x41)), 'not_tar');
    const noMagic = Buffer.from(full);
    noMagic.write('xxxxx', 257, 'latin1');
    assert.equal(await state(noMagic), 'not_tar');
    // a header still arriving, a zero block where a header will be written, a prefix: maybe not yet
    assert.equal(await state(full.subarray(0, 300)), 'incomplete');
    assert.equal(await state(Buffer.concat([Buffer.alloc(512), full.subarray(512, 1024)])), 'incomplete');
    assert.equal(await state(full.subarray(0, 1024)), 'incomplete');
  });
});
