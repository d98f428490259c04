// The reader on docker-save archives crafted in memory (both layouts), no engine needed. The same
// reader on an archive the real engine wrote is in test/integration/package/reader.test.ts.
import assert from 'node:assert/strict';
import { assertFields } from '../../support/assert.js';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CaissonError } from '../../../agent/errors.js';
import { packageIdOf } from '../../../agent/package/identity.js';
import { stagePackage } from '../../../agent/package/reader.js';
import { validateStaged } from '../../../agent/package/validate.js';
import { tarEnd, tarEntry, tarHeader, tarPadding } from '../../../agent/package/tar-writer.js';
import { craftTar, legacyImage, ociImage } from '../../support/image-archives.js';
import { manifestText, rewriteImageManifest, validPackageBytes, type HostileContext } from '../../support/hostile.js';
import { parseCatalog } from '../../../agent/config/services.js';

const REF = 'caisson-pkgtest/reader:1.0.0';
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('package reader', function () {
  this.timeout(120_000);
  let work: string;
  let pkgPath: string;
  let imageTar: Buffer;
  let ctx: HostileContext;
  let n = 0;
  const stagingDir = (): string => join(work, `staging-${n++}`);
  const writePkg = (name: string, bytes: Buffer): string => {
    const p = join(work, name);
    writeFileSync(p, bytes);
    return p;
  };

  const crafted = legacyImage({ ref: REF });
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'caisson-reader-'));
    imageTar = craftTar(crafted.entries);
    ctx = {
      dir: work, imageRef: REF, imageTar, catalog: parseCatalog('catalog_version = 1\n'), catalogToml: '',
      service: { name: 'frontend', revision: 'frontend-v1', platform: 'linux/amd64' },
      trustedKeyDir: '', trustedPrivateKeyPem: '', otherPrivateKeyPem: '', updaterVersion: '0.1.0', builtImage: false,
    };
    pkgPath = writePkg('package.edgepkg', validPackageBytes(ctx));
  });
  after(() => {
    rmSync(work, { recursive: true, force: true });
  });

  it('stages a docker-save package: hashes, exact copies, image ID and tags', async () => {
    const dir = stagingDir();
    const bytes = readFileSync(pkgPath);
    const staged = await stagePackage(pkgPath, dir);
    assert.equal(staged.dir, dir);
    assert.equal(staged.packageId, packageIdOf(staged.manifestBytes, 'image.tar', sha256(imageTar)));
    assert.notEqual(staged.packageId, sha256(bytes)); // not a file digest: see the identity test
    assert.equal(staged.packageSize, bytes.length);
    assert.equal(staged.imageFileName, 'image.tar');
    assert.equal(staged.imagePath, join(dir, 'image.tar'));
    assert.equal(staged.imageSha256, sha256(readFileSync(staged.imagePath)));
    assert.equal(staged.imageSize, statSync(staged.imagePath).size);
    assert.equal(readFileSync(join(dir, 'manifest.toml')).equals(staged.manifestBytes), true);
    assertFields(staged.imageArchive, { imageId: crafted.configDigest, repoTags: [REF], diffIds: crafted.diffIds });
    assert.equal(staged.signature, undefined);
    assert.deepEqual(readdirSync(dir).sort(), ['image.tar', 'manifest.toml']);
    assert.equal(statSync(staged.imagePath).mode & 0o777, 0o600);
  });

  it('stages image.tar.gz without inflating it; validation finds the image inside after the checks', async () => {
    const gz = gzipSync(imageTar);
    const path = writePkg('gz.edgepkg', validPackageBytes(ctx, { image: gz, imageName: 'image.tar.gz', manifest: manifestText(ctx, gz) }));
    const staged = await stagePackage(path, stagingDir());
    assert.equal(staged.imageFileName, 'image.tar.gz');
    assert.equal(staged.imageSha256, sha256(gz));
    assert.equal(staged.imageArchive, undefined);
    const catalog = parseCatalog('catalog_version = 1\n[[services]]\nname = "frontend"\nservice_revision = "frontend-v1"\nplatform = "linux/amd64"\nruntime_mode = "docker"\n[services.docker]\ncontainer_name = "frontend"\nimage_reference = "caisson-pkgtest/reader:current"\n');
    await validateStaged(staged, { catalog, trustedKeys: [], updaterVersion: '0.1.0' });
    assertFields(staged.imageArchive, { imageId: crafted.configDigest, repoTags: [REF], diffIds: crafted.diffIds });
  });

  it('knows a package by what it delivers: the framing and the signature do not change its identity, content does', async () => {
    const man = Buffer.from(manifestText(ctx, imageTar));
    const idOf = async (bytes: Buffer): Promise<string> => (await stagePackage(writePkg(`id-${n}.edgepkg`, bytes), stagingDir())).packageId;
    const plain = await idOf(Buffer.concat([tarEntry({ name: 'manifest.toml' }, man), tarEntry({ name: 'image.tar' }, imageTar), tarEnd()]));
    const reframed = await idOf(
      Buffer.concat([
        tarEntry({ name: 'image.tar', mtime: 1_700_000_000, mode: 0o640 }, imageTar),
        tarEntry({ name: 'manifest.toml.sig' }, Buffer.from('AAAA\n')),
        tarEntry({ name: 'manifest.toml', mtime: 12_345, format: 'gnu' }, man),
        tarEnd(),
      ]),
    );
    assert.equal(reframed, plain);

    const otherManifest = await idOf(validPackageBytes(ctx, { manifest: manifestText(ctx, imageTar, { package_version: '"1.0.1"' }) }));
    const otherImage = rewriteImageManifest(imageTar, (doc) => doc.map((e) => ({ ...e, RepoTags: ['caisson-pkgtest/reader:other'] })));
    const otherImageId = await idOf(validPackageBytes(ctx, { image: otherImage, manifest: manifestText(ctx, imageTar) }));
    assert.equal(new Set([plain, otherManifest, otherImageId]).size, 3);
  });

  it('accepts any entry order (image first, signature in the middle)', async () => {
    const man = manifestText(ctx, imageTar);
    const bytes = Buffer.concat([
      tarEntry({ name: 'image.tar' }, imageTar),
      tarEntry({ name: 'manifest.toml.sig' }, Buffer.from('AAAA\n')),
      tarEntry({ name: 'manifest.toml' }, Buffer.from(man)),
      tarEnd(),
    ]);
    const staged = await stagePackage(writePkg('order.edgepkg', bytes), stagingDir());
    assert.equal(staged.manifestBytes.toString(), man);
    assert.equal(staged.signature?.toString(), 'AAAA\n');
    assert.deepEqual(staged.imageArchive?.repoTags, [REF]);
  });

  it('reads both layouts docker save writes, legacy and OCI (Docker 25+), in the same pass', async () => {
    for (const crafted of [legacyImage({ ref: REF }), ociImage({ ref: REF })]) {
      const image = craftTar(crafted.entries);
      const staged = await stagePackage(writePkg('layout.edgepkg', validPackageBytes(ctx, { image, manifest: manifestText(ctx, image) })), stagingDir());
      assertFields(staged.imageArchive, { imageId: crafted.configDigest, diffIds: crafted.diffIds, repoTags: [REF] });
    }
  });

  it('finds no image in an archive docker save would not write (a re-spelled manifest.json)', async () => {
    const image = craftTar([...legacyImage({ ref: REF }).entries, { name: 'x/../manifest.json', data: '[]' }]);
    const staged = await stagePackage(writePkg('respelled.edgepkg', validPackageBytes(ctx, { image, manifest: manifestText(ctx, image) })), stagingDir());
    assert.equal(staged.imageArchive, undefined);
    assert.match(staged.imageArchiveProblem ?? '', /x\/\.\.\/manifest\.json/);
  });

  it('reports a docker-save archive of an untagged image as having no tags', async () => {
    const untagged = rewriteImageManifest(imageTar, (doc) => doc.map((e) => ({ ...e, RepoTags: null })));
    const staged = await stagePackage(writePkg('untagged.edgepkg', validPackageBytes(ctx, { image: untagged })), stagingDir());
    assert.deepEqual(staged.imageArchive?.repoTags, []);
  });

  it('reports progress up to the full size', async () => {
    const calls: Array<[number, number]> = [];
    await stagePackage(pkgPath, stagingDir(), { onProgress: (done, total) => calls.push([done, total]) });
    const size = statSync(pkgPath).size;
    assert.deepEqual(calls.at(-1), [size, size]);
    assert.equal(calls.every(([d, t], i) => t === size && (i === 0 || d > calls[i - 1]![0])), true);
  });

  it('refuses a package over maxPackageBytes before reading it', async () => {
    const dir = stagingDir();
    const err = await stagePackage(pkgPath, dir, { limits: { maxPackageBytes: 1024 } }).catch((e: unknown) => e);
    assert.ok(err instanceof CaissonError);
    assert.equal(err.code, 'package.too_large');
    assert.equal(existsSync(dir), false);
  });

  it('fails fast on a bad manifest that comes before a large image', async () => {
    const path = join(work, 'fastfail.edgepkg');
    const fd = openSync(path, 'w');
    writeSync(fd, tarEntry({ name: 'manifest.toml' }, Buffer.from('format_version = 7\n')));
    const size = 64 * 1024 * 1024;
    writeSync(fd, tarHeader({ name: 'image.tar', size }));
    const mb = Buffer.alloc(1024 * 1024, 1);
    for (let i = 0; i < 64; i++) writeSync(fd, mb);
    writeSync(fd, tarEnd());
    closeSync(fd);
    let last = 0;
    const err = await stagePackage(path, stagingDir(), { onProgress: (d) => (last = d) }).catch((e: unknown) => e);
    assert.ok(err instanceof CaissonError);
    assert.equal(err.code, 'manifest.unsupported_format');
    assert.ok(last < size / 4);
  });

  it('never overwrites or removes a file it did not create in an existing staging folder', async () => {
    const dir = stagingDir();
    mkdirSync(dir);
    writeFileSync(join(dir, 'image.tar'), 'precious');
    const err = await stagePackage(pkgPath, dir).catch((e: unknown) => e);
    assert.ok(err instanceof CaissonError);
    assert.equal(readFileSync(join(dir, 'image.tar'), 'utf8'), 'precious');
    assert.deepEqual(readdirSync(dir), ['image.tar']); // manifest.toml it had staged is gone again
  });

  it('stages a 300 MiB package with flat memory', async function () {
    this.timeout(300_000);
    const path = join(work, 'big.edgepkg');
    const size = 300 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE(i * 2654435761 >>> 0, i);
    const imageHash = createHash('sha256');
    const man = Buffer.from(manifestText(ctx, Buffer.alloc(0), { pins: '' }));
    const fd = openSync(path, 'w');
    writeSync(fd, tarEntry({ name: 'manifest.toml' }, man));
    writeSync(fd, tarHeader({ name: 'image.tar', size }));
    for (let done = 0; done < size; done += chunk.length) {
      chunk.writeUInt32LE(done, 0);
      imageHash.update(chunk);
      writeSync(fd, chunk);
    }
    writeSync(fd, tarPadding(size));
    writeSync(fd, tarEnd());
    closeSync(fd);

    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    const dir = stagingDir();
    let staged;
    try {
      staged = await stagePackage(path, dir);
    } finally {
      clearInterval(timer);
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    assert.equal(staged.imageSize, size);
    assert.equal(staged.imageSha256, imageHash.digest('hex'));
    assert.equal(staged.imageArchive, undefined); // not a docker-save archive
    const growthMiB = (peak - base) / 1024 / 1024;
    assert.ok(growthMiB < 64, `RSS grew by ${growthMiB.toFixed(1)} MiB`);
    rmSync(dir, { recursive: true });
    rmSync(path);
  });
});
