import assert from 'node:assert/strict';
import { assertFields } from '../../support/assert.js';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaissonError } from '../../../agent/errors.js';
import { TarParser, type TarEntry } from '../../../agent/package/tar-parser.js';
import { paxBody, tarEnd, tarEntry, tarHeader } from '../../../agent/package/tar-writer.js';
import { craftHeader } from '../../support/tar-craft.js';

interface Seen {
  entry: TarEntry;
  data: Buffer;
}

/** Parse `bytes`, feeding `step` bytes at a time. */
function parse(bytes: Buffer, strict: boolean, step = bytes.length || 1): Seen[] {
  const p = new TarParser({ strict });
  const out: Seen[] = [];
  let cur: { entry: TarEntry; chunks: Buffer[] } | undefined;
  for (let i = 0; i < bytes.length; i += step) {
    for (const ev of p.feed(bytes.subarray(i, i + step))) {
      if (ev.kind === 'entry') cur = { entry: ev.entry, chunks: [] };
      else if (ev.kind === 'data') cur!.chunks.push(Buffer.from(ev.data));
      else {
        out.push({ entry: cur!.entry, data: Buffer.concat(cur!.chunks) });
        cur = undefined;
      }
    }
  }
  p.end();
  return out;
}

describe('strict tar parser', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'caisson-tar-'));
    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'src', 'manifest.toml'), 'format_version = 1\n');
    writeFileSync(join(dir, 'src', 'image.tar'), Buffer.alloc(70_000, 7));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const format of ['ustar', 'pax', 'gnu', 'posix']) {
    it(`reads GNU tar --format=${format} output, whatever the chunk size`, () => {
      const out = join(dir, `${format}.tar`);
      execFileSync('tar', [`--format=${format}`, '-C', join(dir, 'src'), '-cf', out, 'manifest.toml', 'image.tar']);
      const bytes = readFileSync(out);
      for (const step of [bytes.length, 1 << 20, 4096, 511, 1]) {
        const seen = parse(bytes, true, step);
        assert.deepEqual(seen.map((s) => [s.entry.path, s.entry.type, s.data.length]), [
          ['manifest.toml', 'file', 19],
          ['image.tar', 'file', 70_000],
        ]);
        assert.equal(seen[1]!.data.equals(Buffer.alloc(70_000, 7)), true);
      }
    });
  }

  it('round-trips its own headers, including base-256 sizes beyond 8 GiB', () => {
    const big = tarHeader({ name: 'image.tar', size: 9 * 1024 ** 3 });
    const p = new TarParser({ strict: true });
    const [ev] = [...p.feed(big)];
    assertFields(ev, { kind: 'entry' });
    assert.equal((ev as { entry: TarEntry }).entry.size, 9 * 1024 ** 3);
    const small = craftHeader({ name: 'x', size: 5, base256Size: true });
    assert.equal(([...new TarParser({ strict: true }).feed(small)][0] as { entry: TarEntry }).entry.size, 5);
  });

  it('agrees with GNU tar on what it writes', () => {
    const out = join(dir, 'ours.tar');
    writeFileSync(out, Buffer.concat([tarEntry({ name: 'manifest.toml' }, Buffer.from('a = 1\n')), tarEntry({ name: 'image.tar' }, Buffer.alloc(1000, 1)), tarEnd()]));
    assert.match(execFileSync('tar', ['-tvf', out], { encoding: 'utf8' }), /manifest\.toml\n.*image\.tar\n$/s);
  });

  it('lenient mode lets pax and GNU long names override and skips global headers', () => {
    const long = 'blobs/sha256/' + 'f'.repeat(120);
    const bytes = Buffer.concat([
      tarEntry({ name: 'pax_global_header', typeflag: 'g' }, paxBody({ comment: 'hi' })),
      tarEntry({ name: 'PaxHeaders/x', typeflag: 'x' }, paxBody({ path: long })),
      tarEntry({ name: long.slice(0, 100) }, Buffer.from('data')),
      tarEntry({ name: '././@LongLink', typeflag: 'L', format: 'gnu' }, Buffer.from(long + 'g\0')),
      tarEntry({ name: 'short', format: 'gnu' }, Buffer.from('x')),
      tarEnd(),
      Buffer.from('trailing data is ignored here'),
    ]);
    assert.deepEqual(parse(bytes, false).map((s) => s.entry.path), [long, long + 'g']);
    assert.throws(() => parse(bytes, true), CaissonError);
  });

  it('stops at the first bad header without reading further', () => {
    const bytes = Buffer.concat([tarEntry({ name: 'a' }, Buffer.from('1')), Buffer.alloc(512, 0x41), tarEnd()]);
    const p = new TarParser({ strict: true });
    const kinds: string[] = [];
    assert.throws(() => {
      for (const ev of p.feed(bytes)) kinds.push(ev.kind);
    }, (e) => e instanceof CaissonError && /checksum/.test(e.message));
    assert.deepEqual(kinds, ['entry', 'data', 'entry-end']);
    assert.equal(p.offset, 1536);
  });
});
