import assert from 'node:assert/strict';
import { readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../../agent/atomic.js';
import { mountStick, removeTree, remount, tempDir, unmount } from '../../support/intake-helpers.js';

describe('atomic report writing', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('caisson-atomic-');
  });
  afterEach(() => {
    unmount(join(dir, 'stick'));
    removeTree(dir);
  });

  it('replaces the file as a whole and leaves no temporary files', () => {
    const f = join(dir, 'caisson-result.txt');
    writeFileAtomic(f, 'first\n');
    writeFileAtomic(f, 'second\n');
    assert.equal(readFileSync(f, 'utf8'), 'second\n');
    assert.deepEqual(readdirSync(dir), ['caisson-result.txt']);
  });

  it('replaces a link planted on the stick instead of writing through it', () => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'keep me');
    symlinkSync(victim, join(dir, 'caisson-result.txt'));
    writeFileAtomic(join(dir, 'caisson-result.txt'), 'report');
    assert.equal(readFileSync(victim, 'utf8'), 'keep me');
    assert.equal(readFileSync(join(dir, 'caisson-result.txt'), 'utf8'), 'report');
  });

  it('on a read-only stick fails and leaves the old file untouched', () => {
    const stick = join(dir, 'stick');
    mountStick(stick);
    writeFileAtomic(join(stick, 'caisson-result.txt'), 'old\n');
    remount(stick, 'ro');
    assert.throws(() => writeFileAtomic(join(stick, 'caisson-result.txt'), 'new\n'), /EROFS/);
    assert.equal(readFileSync(join(stick, 'caisson-result.txt'), 'utf8'), 'old\n');
    assert.deepEqual(readdirSync(stick), ['caisson-result.txt']);
  });

  it('on a full stick fails and leaves no partial file', () => {
    const stick = join(dir, 'stick');
    mountStick(stick);
    writeFileSync(join(stick, 'filler'), Buffer.alloc(8 * 1024 * 1024 - 64 * 1024));
    assert.throws(() => writeFileAtomic(join(stick, 'big.json'), Buffer.alloc(1024 * 1024, 0x41)), /ENOSPC/);
    assert.deepEqual(readdirSync(stick), ['filler']);
  });
});
