import assert from 'node:assert/strict';
import { CaissonError, type ErrorCode } from '../../../agent/errors.js';
import { parseCatalog } from '../../../agent/config/services.js';
import { checkImageArchive, checkIntegrity, fullImageName, checkTarget, checkUpdaterVersion } from '../../../agent/package/checks.js';
import type { ImageArchiveInfo, ServiceManifest, StagedPackage } from '../../../agent/package/types.js';

const catalog = parseCatalog(`catalog_version = 1
[[services]]
name = "frontend"
service_revision = "frontend-v1"
platform = "linux/amd64"
runtime_mode = "docker"
[services.docker]
container_name = "frontend"
`);

const manifest = (over: Partial<ServiceManifest> = {}): ServiceManifest => ({
  format_version: 1,
  package_type: 'service',
  package_version: '1.2.3',
  created_at: '2026-03-16T18:30:00Z',
  target: { service: 'frontend', service_revision: 'frontend-v1', platform: 'linux/amd64' },
  image: { reference: 'example/frontend:1.2.3', sha256: 'b'.repeat(64), size: 1000 },
  compatibility: { min_updater_version: '0.1.0' },
  ...over,
});
const archiveInfo = (repoTags: string[], indexNames: string[] = []): ImageArchiveInfo => ({
  imageId: `sha256:${'d'.repeat(64)}`, repoTags, layout: indexNames.length ? 'oci' : 'legacy', diffIds: [`sha256:${'e'.repeat(64)}`],
  os: 'linux', architecture: 'amd64', runtimeConfig: null, indexNames,
});
const staged = (over: Partial<StagedPackage> = {}): StagedPackage => ({
  dir: '/nonexistent',
  packageId: 'c'.repeat(64),
  packageSize: 3000,
  manifestBytes: Buffer.from(''),
  imagePath: '/nonexistent/image.tar',
  imageFileName: 'image.tar',
  imageSha256: 'b'.repeat(64),
  imageSize: 1000,
  imageArchive: archiveInfo(['example/frontend:1.2.3']),
  ...over,
});
const codeOf = (fn: () => unknown): ErrorCode | 'ok' => {
  try {
    fn();
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof CaissonError);
    return (err as CaissonError).code;
  }
};

describe('package checks', () => {
  it('checkTarget returns the catalog entry, or says what does not match', () => {
    assert.equal(checkTarget(manifest(), catalog).name, 'frontend');
    const t = manifest().target;
    assert.equal(codeOf(() => checkTarget(manifest({ target: { ...t, service: 'backend' } }), catalog)), 'manifest.unknown_service');
    assert.equal(codeOf(() => checkTarget(manifest({ target: { ...t, service_revision: 'frontend-v2' } }), catalog)), 'manifest.revision_mismatch');
    assert.equal(codeOf(() => checkTarget(manifest({ target: { ...t, platform: 'linux/arm64' } }), catalog)), 'manifest.platform_mismatch');
  });

  it('checkUpdaterVersion compares by semver precedence', () => {
    const need = (v: string) => manifest({ compatibility: { min_updater_version: v } });
    assert.equal(codeOf(() => checkUpdaterVersion(need('0.1.0'), '0.1.0')), 'ok');
    assert.equal(codeOf(() => checkUpdaterVersion(need('0.9.0'), '0.10.0')), 'ok');
    assert.equal(codeOf(() => checkUpdaterVersion(need('0.2.0'), '0.2.0-rc.1')), 'manifest.updater_too_old');
    assert.equal(codeOf(() => checkUpdaterVersion(need('1.0.0'), '0.1.0')), 'manifest.updater_too_old');
  });

  it('checkIntegrity checks only what the manifest pins', () => {
    assert.equal(codeOf(() => checkIntegrity(manifest(), staged())), 'ok');
    assert.equal(codeOf(() => checkIntegrity(manifest(), staged({ imageSize: 1001 }))), 'integrity.size_mismatch');
    assert.equal(codeOf(() => checkIntegrity(manifest(), staged({ imageSha256: 'e'.repeat(64) }))), 'integrity.sha256_mismatch');
    const unpinned = manifest({ image: { reference: 'example/frontend:1.2.3' } });
    assert.equal(codeOf(() => checkIntegrity(unpinned, staged({ imageSize: 5, imageSha256: 'e'.repeat(64) }))), 'ok');
  });

  it('checkImageArchive wants exactly one image tagged exactly as the manifest says', () => {
    assert.equal(codeOf(() => checkImageArchive(manifest(), staged())), 'ok');
    const withTags = (repoTags: string[]) => staged({ imageArchive: archiveInfo(repoTags) });
    assert.equal(codeOf(() => checkImageArchive(manifest(), withTags([]))), 'image.reference_mismatch');
    assert.equal(codeOf(() => checkImageArchive(manifest(), withTags(['example/frontend:other']))), 'image.reference_mismatch');
    assert.equal(codeOf(() => checkImageArchive(manifest(), withTags(['example/frontend:1.2.3', 'busybox:latest']))), 'image.reference_mismatch');
    const none = staged();
    delete none.imageArchive;
    none.imageArchiveProblem = 'it holds 2 images; a package holds exactly one';
    assert.throws(() => checkImageArchive(manifest(), none), (e) => e instanceof CaissonError && /2 images/.test(e.message));
    const two = staged({ archiveImages: [archiveInfo(['example/frontend:1.2.3']), archiveInfo(['example/other:1'])] });
    delete two.imageArchive;
    assert.throws(() => checkImageArchive(manifest(), two), (e) => e instanceof CaissonError && /holds 2 images; a service package holds exactly one/.test(e.message) && e.code === 'image.invalid');
    assert.equal(codeOf(() => checkImageArchive(manifest(), none)), 'image.invalid');
  });

  it('checkImageArchive wants the image for the manifest\'s target.platform (what the device runs)', () => {
    const withPlatform = (architecture: string, variant?: string) => staged({ imageArchive: { ...archiveInfo(['example/frontend:1.2.3']), architecture, ...(variant ? { variant } : {}) } });
    assert.equal(codeOf(() => checkImageArchive(manifest(), withPlatform('amd64'))), 'ok');
    assert.equal(codeOf(() => checkImageArchive(manifest(), withPlatform('arm64'))), 'image.platform_mismatch');
    const arm = manifest({ target: { service: 'frontend', service_revision: 'frontend-v1', platform: 'linux/arm64/v8' } });
    assert.equal(codeOf(() => checkImageArchive(arm, withPlatform('arm64'))), 'ok'); // a config without its variant
    assert.equal(codeOf(() => checkImageArchive(arm, withPlatform('arm64', 'v8'))), 'ok');
    assert.equal(codeOf(() => checkImageArchive(arm, withPlatform('arm64', 'v7'))), 'image.platform_mismatch');
  });

  it('checkImageArchive wants the names an OCI index.json gives to be the manifest\'s reference too (the containerd store tags by them)', () => {
    const withIndex = (names: string[]) => staged({ imageArchive: archiveInfo(['example/frontend:1.2.3'], names) });
    assert.equal(codeOf(() => checkImageArchive(manifest(), withIndex(['docker.io/example/frontend:1.2.3']))), 'ok');
    assert.equal(codeOf(() => checkImageArchive(manifest(), withIndex(['docker.io/library/busybox:latest']))), 'image.reference_mismatch');
    assert.equal(codeOf(() => checkImageArchive(manifest(), withIndex(['docker.io/example/frontend:1.2.3', 'docker.io/example/frontend:latest']))), 'image.reference_mismatch');
    assert.equal(fullImageName('app:1'), 'docker.io/library/app:1');
    assert.equal(fullImageName('registry.local:5000/a/b:2'), 'registry.local:5000/a/b:2');
    assert.equal(fullImageName('localhost/a:2'), 'localhost/a:2');
  });
});
