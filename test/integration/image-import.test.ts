// The import's tag rule on the real engine (whichever DOCKER_HOST names, see
// scripts/with-engine.sh): an archive that moves any tag other than the manifest's reference
// is rejected, and every tag is put back where it was.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaissonError } from '../../agent/errors.js';
import { importImage, restoreImageTags, snapshotImageTags, type TagSnapshot } from '../../agent/pipeline/image-import.js';
import { connectDocker } from '../../agent/runtime/docker-client.js';
import { createDockerEngine } from '../../agent/runtime/engine.js';
import { craftLayer, craftTar, legacyImage, ociImage, twoImageLegacyArchive } from '../support/image-archives.js';
import { ImageArchiveReader } from '../../agent/package/image-archive.js';
import { cleanupTestObjects, dockerOk } from '../support/images.js';

const REF = 'caisson-it-import/app:1.0.0';
const VICTIM = 'caisson-it-import/victim:latest';
const api = createDockerEngine(connectDocker(), { stateDir: tmpdir() });

describe('image import on the real engine: identity and tags', function () {
  this.timeout(120_000);
  let dir: string;
  /** IDs of the crafted images loaded here: a tag restore leaves them untagged, not removed. */
  const loaded = new Set<string>();
  const write = (name: string, bytes: Buffer): string => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  const pinned = (tar: Buffer) => {
    const r = new ImageArchiveReader();
    r.write(tar);
    const { images, problem } = r.finish();
    assert.equal(problem, undefined);
    assert.equal(images?.length, 1);
    return images![0]!;
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'caisson-it-import-'));
    cleanupTestObjects([REF, VICTIM]);
  });
  after(() => {
    cleanupTestObjects([REF, VICTIM, ...loaded]);
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [layout, craft] of [['legacy', legacyImage], ['OCI', ociImage]] as const) {
    it(`loads a ${layout} archive and proves the loaded image is the one it pins`, async () => {
      const tar = craftTar(craft({ ref: REF, layers: [craftLayer('v.txt', `${layout}\n`)] }).entries);
      let saved: TagSnapshot | undefined;
      const progress: number[] = [];
      const id = await importImage(api, {
        imagePath: write(`${layout}.tar`, tar),
        reference: REF,
        expectedImage: pinned(tar),
        beforeLoad: (t) => (saved = t),
        onProgress: (done, total) => progress.push(done / total),
      });
      assert.equal(typeof saved, 'object');
      assert.notEqual(saved, null);
      // the bytes handed over are the progress on every store (the containerd store reports no layers)
      assert.ok(progress.length > 0);
      assert.equal(progress.at(-1), 1);
      assert.equal((await snapshotImageTags(api))[REF], id);
      loaded.add(id);
    });
  }

  it('rejects a load that leaves another image than the one pinned under the reference (image.id_mismatch)', async () => {
    const tar = craftTar(legacyImage({ ref: REF, layers: [craftLayer('w.txt', 'what is loaded\n')] }).entries);
    const other = pinned(craftTar(legacyImage({ ref: REF, layers: [craftLayer('w.txt', 'what was pinned\n')] }).entries));
    loaded.add(pinned(tar).imageId);
    const err = await importImage(api, { imagePath: write('mismatch.tar', tar), reference: REF, expectedImage: other, beforeLoad: () => undefined }).catch((e: unknown) => e);
    assert.ok(err instanceof CaissonError);
    assert.equal((err as CaissonError).code, 'image.id_mismatch');
    assert.match((err as CaissonError).message, /not the image image\.tar holds/);
  });

  it('catches a second image in the archive that re-tags another image, and puts every tag back', async () => {
    // the victim tag points at an image of its own before the import
    const victim = craftTar(legacyImage({ ref: VICTIM, layers: [craftLayer('victim.txt', 'victim\n')] }).entries);
    await importImage(api, { imagePath: write('victim.tar', victim), reference: VICTIM, expectedImage: pinned(victim), beforeLoad: () => undefined });
    const before = await snapshotImageTags(api);
    assert.equal(typeof before[VICTIM], 'string');

    const hostile = twoImageLegacyArchive(REF, VICTIM);
    let tagsBefore: TagSnapshot = {};
    let loadedId: string | undefined;
    const err = await importImage(api, {
      imagePath: write('two.tar', hostile),
      reference: REF,
      beforeLoad: (t) => (tagsBefore = t),
      afterLoad: (id) => (loadedId = id),
    }).catch((e: unknown) => e);
    assert.ok(err instanceof CaissonError);
    assert.equal((err as CaissonError).code, 'image.tag_moved');
    assert.ok(((err as CaissonError).message).includes(VICTIM));
    const moved = (await snapshotImageTags(api))[VICTIM];
    assert.notEqual(moved, before[VICTIM]); // it did move
    for (const id of [moved, loadedId, before[VICTIM]]) if (id) loaded.add(id);

    // what the pipeline does on that rejection (and recovery after a crash)
    await restoreImageTags(api, tagsBefore, loadedId ? [loadedId] : [], REF);
    assert.deepEqual(await snapshotImageTags(api), before);
    assert.equal(dockerOk('image', 'inspect', VICTIM), true);
  });
});
