// The builder against the real Docker engine: docker save through dockerode, atomic write.
import { expect } from 'chai';
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
    expect(built.out).to.equal(out);
    expect(execFileSync('tar', ['-tf', out], { encoding: 'utf8' })).to.equal('manifest.toml\nimage.tar\n');
    expect(readdirSync(work)).to.deep.equal(['plain.edgepkg']); // no temporary files left

    const staged = await stagePackage(out, join(work, 'staging'));
    expect(staged.packageId).to.equal(built.packageId); // the vendor sees the identity the device records
    const v = await validateStaged(staged, { catalog, trustedKeys: [], updaterVersion: '0.1.0' });
    expect(v.manifest).to.deep.include({ package_version: '2.0.0', created_at: '2026-03-16T18:30:00Z' });
    expect(v.manifest.image).to.deep.equal({ reference: REF, sha256: built.imageSha256, size: built.imageSize });
    expect(staged.imageArchive).to.deep.include({ repoTags: [REF], diffIds: inspectImage(REF).RootFS.Layers });
    expect(differsFromArchive(REF, staged.imageArchive)).to.equal(undefined);

    // the staged image.tar is a loadable docker-save archive of exactly that image
    docker('rmi', REF);
    expect(imageExists(REF)).to.equal(false);
    docker('load', '-i', staged.imagePath);
    expect(imageId(REF)).to.equal(id);
    rmSync(join(work, 'staging'), { recursive: true });
    rmSync(out);
  });

  it('signs the manifest when given a key; the signature is the last entry and verifies', async () => {
    const keys = join(work, 'keys');
    execFileSync('mkdir', [keys]);
    const files = generateKeyPair(join(keys, 'vendor'));
    const out = join(work, 'signed.edgepkg');
    await buildPackage({ ...base, out, signKeyPath: files.privateKeyPath });
    expect(execFileSync('tar', ['-tf', out], { encoding: 'utf8' })).to.equal('manifest.toml\nimage.tar\nmanifest.toml.sig\n');
    const staged = await stagePackage(out, join(work, 'staging-signed'));
    const v = await validateStaged(staged, { catalog, trustedKeys: loadTrustedKeys(keys), updaterVersion: '0.1.0' });
    expect(v.signature.verified).to.equal(true);
    rmSync(join(work, 'staging-signed'), { recursive: true });
    rmSync(out);
  });

  it('sets issued_at at build time, expires_at from --expires-in, and the device target', async () => {
    const out = join(work, 'targeted.edgepkg');
    await buildPackage({ ...base, out, createdAt: '2026-03-16T18:30:00Z', expiresIn: '30d', deviceClass: 'kiosk-v2', deviceIds: ['k3xq-7h2m-pa4d-6wzt', 'k3xq-7h2m-pa4d-6wzt'] });
    const staged = await stagePackage(out, join(work, 'staging-targeted'), { copyImage: false });
    const m = parseManifest(staged.manifestBytes);
    expect(m).to.deep.include({ created_at: '2026-03-16T18:30:00Z', issued_at: '2026-03-16T18:30:00Z', expires_at: '2026-04-15T18:30:00Z' });
    expect(m.target).to.deep.include({ device_class: 'kiosk-v2', device_ids: ['k3xq-7h2m-pa4d-6wzt'] });
    rmSync(join(work, 'staging-targeted'), { recursive: true, force: true });
    rmSync(out);
  });

  it('says clearly when the image is not in the engine, and leaves nothing behind', async () => {
    const out = join(work, 'missing.edgepkg');
    const before = readdirSync(work);
    const err = await buildPackage({ ...base, imageRef: 'caisson-pkgtest/not-there:1.0.0', out }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(CaissonError).with.property('code', 'usage.invalid');
    expect((err as Error).message).to.match(/not in the local Docker engine/);
    expect(readdirSync(work)).to.deep.equal(before);
  });

  it('refuses invalid inputs before touching Docker', async () => {
    for (const bad of [{ imageRef: 'x:$(reboot)' }, { service: '../etc' }, { version: '1.2' }, { platform: 'linux amd64' }, { minUpdaterVersion: 'new' }]) {
      const err = await buildPackage({ ...base, out: join(work, 'bad.edgepkg'), ...bad, dockerSocket: '/nonexistent.sock' }).catch((e: unknown) => e);
      expect(err, JSON.stringify(bad)).to.be.instanceOf(CaissonError).with.property('code', 'usage.invalid');
    }
  });

  it('refuses a platform the image was not built for', async () => {
    const err = await buildPackage({ ...base, platform: 'linux/arm64', out: join(work, 'arm.edgepkg') }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(CaissonError).with.property('code', 'usage.invalid');
    expect((err as Error).message).to.match(/linux\/amd64/);
  });

  it('reports an unreachable engine as docker.unreachable', async () => {
    const err = await buildPackage({ ...base, out: join(work, 'x.edgepkg'), dockerSocket: '/nonexistent.sock' }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(CaissonError).with.property('code', 'docker.unreachable');
  });
});
