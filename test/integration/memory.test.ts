// Flat memory (issue 5): staging, validating and importing a 300 MB package must not grow
// the process by anything like the package size. A behaviour check with a generous bound
// (whole-file buffering would add 300 MB; the streaming code adds ~15-25 MB, most of it
// the hashing thread), never a timing check.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stagePackage } from '../../agent/package/reader.js';
import { connectDocker } from '../../agent/runtime/docker-client.js';
import { loadImageFromFile } from '../../agent/runtime/image-load.js';
import { buildTestImage, imageExists } from '../support/images.js';
import { testKey } from '../support/encrypted-packages.js';

const SIZE = 300 * 1024 * 1024;
const BOUND = 64 * 1024 * 1024;
const REF = 'caisson-mem-big:1';

/** Peak RSS growth over the baseline while `work` runs (sampled every 5 ms). */
async function rssGrowth(work: () => Promise<unknown>): Promise<number> {
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, process.memoryUsage.rss()) - base;
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

describe('memory stays flat with a 300 MB package', function () {
  this.timeout(300_000);
  let dir: string;
  let pkg: string;

  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'caisson-mem-'));
    // generated outside this process, so building it costs this process no memory
    writeFileSync(join(dir, 'manifest.toml'), 'format_version = 1\n');
    execFileSync('sh', ['-c', `head -c ${SIZE} /dev/urandom > image.tar && tar --format=ustar -cf pkg.edgepkg manifest.toml image.tar && rm image.tar`], { cwd: dir });
    pkg = join(dir, 'pkg.edgepkg');
  });

  after(function () {
    rmSync(dir, { recursive: true, force: true });
    spawnSync('docker', ['rmi', '-f', REF], { stdio: 'ignore' });
  });

  it('stages (copy + both hashes in one pass) within the bound', async function () {
    // warm up: module code, the hashing thread's code paths
    await stagePackage(pkg, join(dir, 'warm'), { parseManifestEarly: false, copyImage: false });
    let size = 0;
    const grew = await rssGrowth(async () => {
      const staged = await stagePackage(pkg, join(dir, 'staging'), { parseManifestEarly: false });
      size = staged.imageSize;
    });
    rmSync(join(dir, 'staging'), { recursive: true, force: true });
    assert.equal(size, SIZE);
    assert.ok(grew < BOUND, `RSS grew by ${mib(grew)}`);
  });

  it('validates without a copy within the bound', async function () {
    const grew = await rssGrowth(() => stagePackage(pkg, join(dir, 'validate'), { parseManifestEarly: false, copyImage: false }));
    rmSync(join(dir, 'validate'), { recursive: true, force: true });
    assert.ok(grew < BOUND, `RSS grew by ${mib(grew)}`);
  });

  it('stages an encrypted 300 MB package (decrypt, copy, three hashes in one pass) within the bound', async function () {
    const key = testKey();
    // encrypted in another process, so making the input costs this process no memory
    execFileSync('sh', ['-c', `head -c ${SIZE} /dev/urandom > image.tar && "$3" "$1" image.tar image.tar.age "$2" && rm image.tar && tar --format=ustar -cf sealed.edgepkg manifest.toml image.tar.age && rm image.tar.age`,
      'sh', join(process.cwd(), 'test', 'support', 'encrypt-file.ts'), key.publicBase64, join(process.cwd(), 'node_modules', '.bin', 'tsx')], { cwd: dir });
    const sealed = join(dir, 'sealed.edgepkg');
    let size = 0;
    const grew = await rssGrowth(async () => {
      const staged = await stagePackage(sealed, join(dir, 'sealed-staging'), { parseManifestEarly: false, decryptionKeys: () => [key] });
      size = staged.imageSize;
    });
    rmSync(join(dir, 'sealed-staging'), { recursive: true, force: true });
    rmSync(sealed, { force: true });
    assert.equal(size, SIZE);
    assert.ok(grew < BOUND, `RSS grew by ${mib(grew)}`);
  });

  it('imports a 300 MB image into the engine within the bound', async function () {
    buildTestImage({ ref: REF, version: 'mem', paddingBytes: SIZE });
    const archive = join(dir, 'image-save.tar');
    execFileSync('docker', ['save', '-o', archive, REF]);
    execFileSync('docker', ['rmi', REF], { stdio: 'ignore' });
    const docker = connectDocker();
    const grew = await rssGrowth(() => loadImageFromFile(docker, archive));
    assert.equal(imageExists(REF), true);
    assert.ok(grew < BOUND, `RSS grew by ${mib(grew)}`);
  });
});
