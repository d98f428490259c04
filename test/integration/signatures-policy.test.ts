// Signatures, the downgrade policy and the disk-space check, through the CLI against a real
// engine and a running service, with a trusted keys folder. Which signatures and bytes pass is
// test/unit/package/signature.test.ts and checks.test.ts (every hostile case, by code, is
// test/unit/hostile-corpus.test.ts); which versions pass is test/unit/store/journal.test.ts.
// Here one refusal of each kind proves the real CLI and engine fit them.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tarEnd, tarEntry } from '../../agent/package/tar-writer.js';
import {
  buildPackage,
  buildTestImage,
  commonArgs,
  containerInfo,
  dockerServiceFixture,
  ensureBuilt,
  healthyVersion,
  history,
  imageExists,
  removeContainers,
  removeImages,
  runCli,
  runServiceContainer,
  stagingLeft,
  type CliFixture,
} from './pipeline-support.js';

const REPO = 'caisson-sec-sig/web';
const CONTAINER = 'caisson-sec-sig-web';
const PORT = 18360;

/** The entries of a plain ustar package, in order. */
function entries(pkg: string): Array<{ name: string; data: Buffer }> {
  const buf = readFileSync(pkg);
  const out: Array<{ name: string; data: Buffer }> = [];
  let o = 0;
  while (o + 512 <= buf.length) {
    const h = buf.subarray(o, o + 512);
    if (h.every((b) => b === 0)) break;
    const name = h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
    const size = parseInt(h.toString('latin1', 124, 136).replace(/[\0 ]/g, '') || '0', 8);
    out.push({ name, data: buf.subarray(o + 512, o + 512 + size) });
    o += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

function pack(out: string, parts: Array<{ name: string; data: Buffer }>): string {
  writeFileSync(out, Buffer.concat([...parts.map((p) => tarEntry({ name: p.name }, p.data)), tarEnd()]));
  return out;
}

describe('signatures, downgrade policy and disk space (CLI, real engine)', function () {
  this.timeout(600_000);
  let work: string;
  let f: CliFixture;
  let containerBefore: string;
  const pk: Record<string, string> = {};

  before(async function () {
    this.timeout(300_000);
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'caisson-sec-sig-'));
    const keysDir = join(work, 'trusted-keys');
    const vendorDir = join(work, 'vendor');
    mkdirSync(keysDir);
    mkdirSync(vendorDir);
    for (const who of ['vendor', 'stranger']) {
      const g = await runCli(['key', 'generate', '-o', join(vendorDir, who)]);
      assert.equal(g.code, 0, g.stderr);
    }
    writeFileSync(join(keysDir, 'vendor.pub'), readFileSync(join(vendorDir, 'vendor.pub')));
    f = dockerServiceFixture(work, { name: 'sig', revision: 'sig-v1', container: CONTAINER, image: `${REPO}:1.0.0`, port: PORT }, keysDir);
    for (const v of ['1.0.0', '1.0.5', '1.1.0']) buildTestImage({ ref: `${REPO}:${v}`, version: v });
    // 1.1.0 once more, from other bytes (same version number, different package)
    buildTestImage({ ref: `${REPO}:1.1.0-rebuilt`, version: '1.1.0-rebuilt' });
    buildTestImage({ ref: `${REPO}:big`, version: 'big', paddingBytes: 12 * 1024 * 1024 });
    const vendorKey = join(vendorDir, 'vendor.key');
    const b = (image: string, version: string, name: string, sign?: string) =>
      buildPackage({ image: `${REPO}:${image}`, service: 'sig', revision: 'sig-v1', version, out: join(work, 'pkg', `${name}.edgepkg`), sign });
    pk.good = await b('1.1.0', '1.1.0', 'good', vendorKey);
    pk.stranger = await b('1.1.0', '1.1.0', 'stranger', join(vendorDir, 'stranger.key'));
    pk.older = await b('1.0.5', '1.0.5', 'older', vendorKey);
    pk.rebuilt = await b('1.1.0-rebuilt', '1.1.0', 'rebuilt', vendorKey);
    pk.big = await b('big', '1.3.0', 'big', vendorKey);

    // `good` with one byte of image.tar flipped (same size, valid signature)
    pk.tampered = pack(
      join(work, 'pkg', 'tampered.edgepkg'),
      entries(pk.good).map((e) => {
        if (e.name !== 'image.tar') return e;
        const data = Buffer.from(e.data);
        data[data.length >> 1] = data[data.length >> 1]! ^ 0x01;
        return { name: e.name, data };
      }),
    );
    removeImages(...['1.0.5', '1.1.0', '1.1.0-rebuilt', 'big'].map((v) => `${REPO}:${v}`));
    removeContainers(CONTAINER);
    containerBefore = runServiceContainer({ name: CONTAINER, image: `${REPO}:1.0.0`, port: PORT });
    assert.equal(await healthyVersion(PORT), '1.0.0');
  });

  after(() => {
    removeContainers(CONTAINER, `${CONTAINER}.caisson-prev`);
    removeImages(...['1.0.0', '1.0.5', '1.1.0', '1.1.0-rebuilt', 'big'].map((v) => `${REPO}:${v}`));
    if (work) {
      spawnSync('umount', [join(work, 'tiny')], { stdio: 'ignore' });
      rmSync(work, { recursive: true, force: true });
    }
  });

  async function load(pkg: string, extra: string[] = [], fixture = f) {
    return runCli(['package', 'load', '--yes', '--json', ...commonArgs(fixture), ...extra, pkg]);
  }

  // a refused signature, and refused bytes under a valid one (an unsigned package is
  // test/integration/hostile-cli.test.ts's signature case)
  const rejections: Array<[string, string, () => string]> = [
    ['a package signed by a key the device does not trust', 'signature.invalid', () => pk.stranger!],
    ['a signed package whose image bytes were tampered with', 'integrity.sha256_mismatch', () => pk.tampered!],
  ];
  for (const [what, code, pkg] of rejections) {
    it(`rejects ${what} (${code}), service untouched`, async () => {
      const r = await load(pkg());
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.json.outcome, 'rejected');
      assert.equal(r.json.error.code, code);
      assert.equal(containerInfo(CONTAINER)?.id, containerBefore);
      assert.equal(await healthyVersion(PORT), '1.0.0');
      assert.equal(imageExists(`${REPO}:1.1.0`), false);
    });
  }

  it('applies a good signed package', async () => {
    const r = await load(pk.good!);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.outcome, 'committed');
    assert.equal(await healthyVersion(PORT), '1.1.0');
  });

  it('refuses an older version with policy.downgrade', async () => {
    const r = await load(pk.older!);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.json.error.code, 'policy.downgrade');
    assert.equal(await healthyVersion(PORT), '1.1.0');
    assert.equal(imageExists(`${REPO}:1.0.5`), false);
  });

  it('applies the older version when the operator passes --allow-downgrade', async () => {
    const r = await load(pk.older!, ['--allow-downgrade']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.outcome, 'committed');
    assert.equal(await healthyVersion(PORT), '1.0.5');
    // the highest version stays: without the flag, 1.0.5 → 1.0.5 again is fine, but not below
    // 1.1.0, nor 1.1.0 from other bytes
    const again = await load(pk.rebuilt!);
    assert.equal(again.json.error?.code, 'policy.downgrade');
  });

  it('refuses with disk.insufficient when the state dir cannot hold the package, before copying anything', async function () {
    const tiny = join(work, 'tiny');
    mkdirSync(tiny, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'caisson-sec-tiny', tiny]);
    try {
      const fixture = { ...f, stateDir: join(tiny, 'state') };
      const size = readFileSync(pk.big!).length;
      assert.ok(size > 8 * 1024 * 1024);
      const r = await load(pk.big!, [], fixture);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.json.outcome, 'rejected');
      assert.equal(r.json.error.code, 'disk.insufficient');
      assert.deepEqual(stagingLeft(fixture.stateDir), []);
      const df = execFileSync('df', ['-B1', '--output=used', tiny], { encoding: 'utf8' }).trim().split('\n').pop()!;
      assert.ok(Number(df) < 2 * 1024 * 1024, 'nothing was staged on the tmpfs');
      assert.equal(await healthyVersion(PORT), '1.0.5');
      assert.equal(imageExists(`${REPO}:big`), false);
    } finally {
      execFileSync('umount', [tiny]);
    }
  });

  it('keeps one closed history record per attempt', async () => {
    const records = (await history(f)).filter((r) => r.kind === 'update');
    assert.equal(records.every((r) => r.outcome !== 'open'), true);
    assert.equal((records.filter((r) => r.outcome === 'committed')).length, 2);
  });
});
