// A package whose image.tar is a multi-platform index (as `docker save` writes a
// multi-platform image on the containerd store) on the real engine, whichever DOCKER_HOST
// names (scripts/with-engine.sh): the device's platform (linux/amd64, a real busybox-static
// rootfs) is the image manifest.json pins; the other platform's image is listed, saved or
// not. Both stores must end up running exactly the pinned image, and a package pinning the
// other platform's image is refused before the engine is touched.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCatalog } from '../../agent/config/services.js';
import { CaissonError } from '../../agent/errors.js';
import { stagePackage } from '../../agent/package/reader.js';
import { tarEnd, tarEntry } from '../../agent/package/tar-writer.js';
import { validateStaged } from '../../agent/package/validate.js';
import { importImage, snapshotImageTags } from '../../agent/pipeline/image-import.js';
import { connectDocker } from '../../agent/runtime/docker-client.js';
import { createDockerEngine } from '../../agent/runtime/engine.js';
import { craftTar, multiPlatformOciImage, type CraftPlatform } from '../support/image-archives.js';
import { cleanupTestObjects, differsFromArchive, docker, imageExists, imageStore } from '../support/images.js';

const REF = 'caisson-it-multiarch/app:1.0.0';
const AMD64: CraftPlatform = { os: 'linux', architecture: 'amd64' };
const ARM64: CraftPlatform = { os: 'linux', architecture: 'arm64', variant: 'v8' };
const catalog = parseCatalog(`catalog_version = 1
[[services]]
name = "frontend"
service_revision = "frontend-v1"
platform = "linux/amd64"
runtime_mode = "docker"
[services.docker]
container_name = "caisson-it-multiarch"
`);
const api = createDockerEngine(connectDocker(), { stateDir: tmpdir() });

/** A layer tar of a folder (numeric owners, as docker save writes them). */
function layerOf(dir: string): Buffer {
  return execFileSync('tar', ['-C', dir, '--numeric-owner', '--owner=0', '--group=0', '--sort=name', '-cf', '-', '.'], { maxBuffer: 64 * 1024 * 1024 });
}

/** A package of this image.tar for the service, pinning it (the device's checks run on it). */
function writePackage(out: string, imageTar: Buffer): void {
  const manifest = `format_version = 1
package_type = "service"
package_version = "1.0.0"
created_at = "2026-03-16T18:30:00Z"

[target]
service = "frontend"
service_revision = "frontend-v1"
platform = "linux/amd64"

[image]
reference = "${REF}"
sha256 = "${createHash('sha256').update(imageTar).digest('hex')}"
size = ${imageTar.length}

[compatibility]
min_updater_version = "0.1.0"
`;
  writeFileSync(out, Buffer.concat([tarEntry({ name: 'manifest.toml' }, Buffer.from(manifest)), tarEntry({ name: 'image.tar' }, imageTar), tarEnd()]));
}

describe('multi-platform image indexes on the real engine', function () {
  this.timeout(180_000);
  let dir: string;
  let amd64Layer: Buffer;
  let arm64Layer: Buffer;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'caisson-it-multiarch-'));
    cleanupTestObjects([REF]);
    const root = join(dir, 'amd64-root');
    mkdirSync(join(root, 'bin'), { recursive: true });
    copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
    chmodSync(join(root, 'bin', 'busybox'), 0o755);
    writeFileSync(join(root, 'platform'), 'linux/amd64\n');
    amd64Layer = layerOf(root);
    const other = join(dir, 'arm64-root');
    mkdirSync(other);
    writeFileSync(join(other, 'platform'), 'linux/arm64\n'); // never run here
    arm64Layer = layerOf(other);
  });
  after(() => {
    cleanupTestObjects([REF]);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Stage and check the package as the device does; the staged package. */
  async function staged(name: string, imageTar: Buffer) {
    const path = join(dir, `${name}.edgepkg`);
    writePackage(path, imageTar);
    const s = await stagePackage(path, join(dir, `staging-${name}`));
    await validateStaged(s, { catalog, trustedKeys: [], updaterVersion: '0.1.0' });
    return s;
  }

  const shapes = [
    ['both platforms saved (docker save of a multi-platform image)', undefined],
    ['the other platform listed but not saved (docker save --platform linux/amd64)', [0]],
  ] as const;
  for (const [what, saved] of shapes) {
    it(`runs the device's platform, proven to be the pinned image: ${what}`, async () => {
      cleanupTestObjects([REF]);
      const img = multiPlatformOciImage({
        ref: REF,
        images: [
          { platform: AMD64, layers: [amd64Layer], cmd: ['/bin/busybox', 'cat', '/platform'] },
          { platform: ARM64, layers: [arm64Layer], cmd: ['/bin/false'] },
        ],
        ...(saved ? { saved: [...saved] } : {}),
      });
      const s = await staged(saved ? 'one-saved' : 'both-saved', craftTar(img.entries));
      const { imageId, diffIds, os, architecture } = s.imageArchive!;
      assert.deepEqual({ imageId, diffIds, os, architecture }, { imageId: img.configDigest, diffIds: img.diffIds, os: 'linux', architecture: 'amd64' });

      const id = await importImage(api, { imagePath: s.imagePath, reference: REF, expectedImage: s.imageArchive, beforeLoad: () => undefined });
      // the classic store loads what manifest.json names (its ID is the config digest); the
      // containerd store takes the whole index (its ID is an index digest) and picks this platform
      if (imageStore() === 'classic') assert.equal(id, img.configDigest);
      else assert.notEqual(id, img.configDigest);
      assert.equal(differsFromArchive(REF, s.imageArchive), undefined);
      assert.equal(docker('image', 'inspect', '-f', '{{.Os}}/{{.Architecture}}', REF), 'linux/amd64');
      assert.equal(docker('run', '--rm', REF), 'linux/amd64');
    });
  }

  it('refuses a package that pins the other platform\'s image before the engine is touched (image.platform_mismatch)', async () => {
    cleanupTestObjects([REF]);
    const before = await snapshotImageTags(api);
    // manifest.json names the arm64 image; the index lists the device's platform too
    const img = multiPlatformOciImage({
      ref: REF,
      images: [
        { platform: ARM64, layers: [arm64Layer], cmd: ['/bin/false'] },
        { platform: AMD64, layers: [amd64Layer], cmd: ['/bin/busybox', 'cat', '/platform'] },
      ],
    });
    const err = await staged('pins-arm64', craftTar(img.entries)).catch((e: unknown) => e);
    assert.ok(err instanceof CaissonError);
    assert.equal((err as CaissonError).code, 'image.platform_mismatch');
    assert.match((err as CaissonError).message, /linux\/arm64\/v8.*linux\/amd64/);
    assert.equal(imageExists(REF), false);
    // nothing tagged or moved (on a shared engine, others may remove their own tags meanwhile)
    const after = await snapshotImageTags(api);
    assert.deepEqual(Object.entries(after).filter(([ref, id]) => before[ref] !== id), []);
  });

  it('refuses an index with a second image for the device\'s platform (image.invalid)', async () => {
    const img = multiPlatformOciImage({
      ref: REF,
      images: [
        { platform: AMD64, layers: [amd64Layer], cmd: ['/bin/busybox', 'cat', '/platform'] },
        { platform: AMD64, layers: [arm64Layer], cmd: ['/bin/false'] },
      ],
    });
    const err = await staged('two-amd64', craftTar(img.entries)).catch((e: unknown) => e);
    assert.equal((err as CaissonError).code, 'image.invalid');
    assert.match((err as CaissonError).message, /second image for linux\/amd64/);
  });
});
