// The reader on an archive the real engine wrote (docker save through the builder): what it
// finds in it matches the engine's own image. Crafted archives are in test/unit/package/reader.test.ts.
import assert from 'node:assert/strict';
import { assertFields } from '../../support/assert.js';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildPackage } from '../../../agent/package/builder.js';
import { packageIdOf } from '../../../agent/package/identity.js';
import { stagePackage } from '../../../agent/package/reader.js';
import { validateStaged } from '../../../agent/package/validate.js';
import { buildTestImage, cleanupTestObjects, differsFromArchive, inspectImage } from '../../support/images.js';
import { manifestText, validPackageBytes, type HostileContext } from '../../support/hostile.js';
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

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'caisson-reader-'));
    buildTestImage({ ref: REF, version: '1.0.0' });
    pkgPath = join(work, 'real.edgepkg');
    const built = await buildPackage({
      imageRef: REF, service: 'frontend', serviceRevision: 'frontend-v1', platform: 'linux/amd64', version: '1.0.0', out: pkgPath,
    });
    const staged = await stagePackage(pkgPath, join(work, 'first'));
    imageTar = readFileSync(staged.imagePath);
    assert.equal(sha256(imageTar), built.imageSha256);
    ctx = {
      dir: work, imageRef: REF, imageTar, catalog: parseCatalog('catalog_version = 1\n'), catalogToml: '',
      service: { name: 'frontend', revision: 'frontend-v1', platform: 'linux/amd64' },
      trustedKeyDir: '', trustedPrivateKeyPem: '', otherPrivateKeyPem: '', updaterVersion: '0.1.0', builtImage: true,
    };
  });
  after(() => {
    cleanupTestObjects([REF]);
    rmSync(work, { recursive: true, force: true });
  });

  it('stages a real docker-save package: hashes, exact copies, image ID and tags', async () => {
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
    assertFields(staged.imageArchive, { repoTags: [REF], diffIds: inspectImage(REF).RootFS.Layers });
    assert.equal(differsFromArchive(REF, staged.imageArchive), undefined);
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
    assertFields(staged.imageArchive, { repoTags: [REF], diffIds: inspectImage(REF).RootFS.Layers });
    assert.equal(differsFromArchive(REF, staged.imageArchive), undefined);
  });
});
