// The builder against the real Docker engine: docker save through dockerode, atomic write.
// What it refuses before reaching an engine is in test/unit/package/builder.test.ts.
import assert from 'node:assert/strict';
import { assertFields } from '../../support/assert.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaissonError } from '../../../agent/errors.js';
import { parseCatalog } from '../../../agent/config/services.js';
import { buildPackage } from '../../../agent/package/builder.js';
import { stagePackage } from '../../../agent/package/reader.js';
import { parseManifest } from '../../../agent/package/manifest.js';
import { generateKeyPair, loadTrustedKeys } from '../../../agent/package/signature.js';
import { validateStaged } from '../../../agent/package/validate.js';
import { buildTestImage, cleanupTestObjects, differsFromArchive, docker, imageExists, imageId, inspectImage } from '../../support/images.js';

const REF = 'caisson-pkgtest/builder:2.0.0';
const catalog = parseCatalog(`catalog_version = 1
[[services]]
name = "frontend"
service_revision = "frontend-v1"
platform = "linux/amd64"
runtime_mode = "docker"
[services.docker]
container_name = "frontend"
`);
const base = { imageRef: REF, service: 'frontend', serviceRevision: 'frontend-v1', platform: 'linux/amd64', version: '2.0.0' };

describe('package builder', function () {
  this.timeout(120_000);
  let work: string;
  let id: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'caisson-builder-'));
    id = buildTestImage({ ref: REF, version: '2.0.0' });
  });
  after(() => {
    cleanupTestObjects([REF]);
    rmSync(work, { recursive: true, force: true });
  });

  it('writes manifest.toml then image.tar; the package validates and its image loads back', async () => {
    const out = join(work, 'plain.edgepkg');
    const built = await buildPackage({ ...base, out, createdAt: '2026-03-16T18:30:00Z' });
    assert.equal(built.out, out);
    assert.equal(execFileSync('tar', ['-tf', out], { encoding: 'utf8' }), 'manifest.toml\nimage.tar\n');
    assert.deepEqual(readdirSync(work), ['plain.edgepkg']); // no temporary files left

    const staged = await stagePackage(out, join(work, 'staging'));
    assert.equal(staged.packageId, built.packageId); // the vendor sees the identity the device records
    const v = await validateStaged(staged, { catalog, trustedKeys: [], updaterVersion: '0.1.0' });
    assertFields(v.manifest, { package_version: '2.0.0', created_at: '2026-03-16T18:30:00Z' });
    assert.deepEqual(v.manifest.image, { reference: REF, sha256: built.imageSha256, size: built.imageSize });
    assertFields(staged.imageArchive, { repoTags: [REF], diffIds: inspectImage(REF).RootFS.Layers });
    assert.equal(differsFromArchive(REF, staged.imageArchive), undefined);

    // the staged image.tar is a loadable docker-save archive of exactly that image
    docker('rmi', REF);
    assert.equal(imageExists(REF), false);
    docker('load', '-i', staged.imagePath);
    assert.equal(imageId(REF), id);
    rmSync(join(work, 'staging'), { recursive: true });
    rmSync(out);
  });

  it('signs the manifest when given a key; the signature is the last entry and verifies', async () => {
    const keys = join(work, 'keys');
    execFileSync('mkdir', [keys]);
    const files = generateKeyPair(join(keys, 'vendor'));
    const out = join(work, 'signed.edgepkg');
    await buildPackage({ ...base, out, signKeyPath: files.privateKeyPath });
    assert.equal(execFileSync('tar', ['-tf', out], { encoding: 'utf8' }), 'manifest.toml\nimage.tar\nmanifest.toml.sig\n');
    const staged = await stagePackage(out, join(work, 'staging-signed'));
    const v = await validateStaged(staged, { catalog, trustedKeys: loadTrustedKeys(keys), updaterVersion: '0.1.0' });
    assert.equal(v.signature.verified, true);
    rmSync(join(work, 'staging-signed'), { recursive: true });
    rmSync(out);
  });

  it('sets issued_at at build time, expires_at from --expires-in, and the device target', async () => {
    const out = join(work, 'targeted.edgepkg');
    await buildPackage({ ...base, out, createdAt: '2026-03-16T18:30:00Z', expiresIn: '30d', deviceClass: 'kiosk-v2', deviceIds: ['k3xq-7h2m-pa4d-6wzt', 'k3xq-7h2m-pa4d-6wzt'] });
    const staged = await stagePackage(out, join(work, 'staging-targeted'), { copyImage: false });
    const m = parseManifest(staged.manifestBytes);
    assertFields(m, { created_at: '2026-03-16T18:30:00Z', issued_at: '2026-03-16T18:30:00Z', expires_at: '2026-04-15T18:30:00Z' });
    assertFields(m.target, { device_class: 'kiosk-v2', device_ids: ['k3xq-7h2m-pa4d-6wzt'] });
    rmSync(join(work, 'staging-targeted'), { recursive: true, force: true });
    rmSync(out);
  });

  it('says clearly when the image is not in the engine, and leaves nothing behind', async () => {
    const out = join(work, 'missing.edgepkg');
    const before = readdirSync(work);
    const err = await buildPackage({ ...base, imageRef: 'caisson-pkgtest/not-there:1.0.0', out }).catch((e: unknown) => e);
    assert.ok(err instanceof CaissonError);
    assert.equal(err.code, 'usage.invalid');
    assert.match((err as Error).message, /not in the local Docker engine/);
    assert.deepEqual(readdirSync(work), before);
  });

  it('refuses a platform the image was not built for', async () => {
    const err = await buildPackage({ ...base, platform: 'linux/arm64', out: join(work, 'arm.edgepkg') }).catch((e: unknown) => e);
    assert.ok(err instanceof CaissonError);
    assert.equal(err.code, 'usage.invalid');
    assert.match((err as Error).message, /linux\/amd64/);
  });
});
