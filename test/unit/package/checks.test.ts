import { expect } from 'chai';
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
    expect(err).to.be.instanceOf(CaissonError);
    return (err as CaissonError).code;
  }
};

describe('package checks', () => {
  it('checkTarget returns the catalog entry, or says what does not match', () => {
    expect(checkTarget(manifest(), catalog).name).to.equal('frontend');
    const t = manifest().target;
    expect(codeOf(() => checkTarget(manifest({ target: { ...t, service: 'backend' } }), catalog))).to.equal('manifest.unknown_service');
    expect(codeOf(() => checkTarget(manifest({ target: { ...t, service_revision: 'frontend-v2' } }), catalog))).to.equal('manifest.revision_mismatch');
    expect(codeOf(() => checkTarget(manifest({ target: { ...t, platform: 'linux/arm64' } }), catalog))).to.equal('manifest.platform_mismatch');
  });

  it('checkUpdaterVersion compares by semver precedence', () => {
    const need = (v: string) => manifest({ compatibility: { min_updater_version: v } });
    expect(codeOf(() => checkUpdaterVersion(need('0.1.0'), '0.1.0'))).to.equal('ok');
    expect(codeOf(() => checkUpdaterVersion(need('0.9.0'), '0.10.0'))).to.equal('ok');
    expect(codeOf(() => checkUpdaterVersion(need('0.2.0'), '0.2.0-rc.1'))).to.equal('manifest.updater_too_old');
    expect(codeOf(() => checkUpdaterVersion(need('1.0.0'), '0.1.0'))).to.equal('manifest.updater_too_old');
  });

  it('checkIntegrity checks only what the manifest pins', () => {
    expect(codeOf(() => checkIntegrity(manifest(), staged()))).to.equal('ok');
    expect(codeOf(() => checkIntegrity(manifest(), staged({ imageSize: 1001 })))).to.equal('integrity.size_mismatch');
    expect(codeOf(() => checkIntegrity(manifest(), staged({ imageSha256: 'e'.repeat(64) })))).to.equal('integrity.sha256_mismatch');
    const unpinned = manifest({ image: { reference: 'example/frontend:1.2.3' } });
    expect(codeOf(() => checkIntegrity(unpinned, staged({ imageSize: 5, imageSha256: 'e'.repeat(64) })))).to.equal('ok');
  });

  it('checkImageArchive wants exactly one image tagged exactly as the manifest says', () => {
    expect(codeOf(() => checkImageArchive(manifest(), staged()))).to.equal('ok');
    const withTags = (repoTags: string[]) => staged({ imageArchive: archiveInfo(repoTags) });
    expect(codeOf(() => checkImageArchive(manifest(), withTags([])))).to.equal('image.reference_mismatch');
    expect(codeOf(() => checkImageArchive(manifest(), withTags(['example/frontend:other'])))).to.equal('image.reference_mismatch');
    expect(codeOf(() => checkImageArchive(manifest(), withTags(['example/frontend:1.2.3', 'busybox:latest'])))).to.equal('image.reference_mismatch');
    const none = staged();
    delete none.imageArchive;
    none.imageArchiveProblem = 'it holds 2 images; a package holds exactly one';
    expect(() => checkImageArchive(manifest(), none)).to.throw(CaissonError, /2 images/);
    const two = staged({ archiveImages: [archiveInfo(['example/frontend:1.2.3']), archiveInfo(['example/other:1'])] });
    delete two.imageArchive;
    expect(() => checkImageArchive(manifest(), two)).to.throw(CaissonError, /holds 2 images; a service package holds exactly one/).with.property('code', 'image.invalid');
    expect(codeOf(() => checkImageArchive(manifest(), none))).to.equal('image.invalid');
  });

  it('checkImageArchive wants the names an OCI index.json gives to be the manifest\'s reference too (the containerd store tags by them)', () => {
    const withIndex = (names: string[]) => staged({ imageArchive: archiveInfo(['example/frontend:1.2.3'], names) });
    expect(codeOf(() => checkImageArchive(manifest(), withIndex(['docker.io/example/frontend:1.2.3'])))).to.equal('ok');
    expect(codeOf(() => checkImageArchive(manifest(), withIndex(['docker.io/library/busybox:latest'])))).to.equal('image.reference_mismatch');
    expect(codeOf(() => checkImageArchive(manifest(), withIndex(['docker.io/example/frontend:1.2.3', 'docker.io/example/frontend:latest'])))).to.equal('image.reference_mismatch');
    expect(fullImageName('app:1')).to.equal('docker.io/library/app:1');
    expect(fullImageName('registry.local:5000/a/b:2')).to.equal('registry.local:5000/a/b:2');
    expect(fullImageName('localhost/a:2')).to.equal('localhost/a:2');
  });
});
