// The dockerode layer against the real engine: loading archives, broken archives, tags.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectDocker, pingDocker } from '../../../agent/runtime/docker-client.js';
import { loadImageFromFile, type LoadProgressEvent } from '../../../agent/runtime/image-load.js';
import { imageIdOf, restoreTags, snapshotTags } from '../../../agent/runtime/image-tags.js';
import { CaissonError } from '../../../agent/errors.js';
import { buildOwnImage, cleanup, docker, dockerOk, imageId } from './support.js';
import { imageStore } from '../../support/images.js';

const P = 'caisson-rt-l-';
const IMG_A = `${P}a:1`;
const IMG_B = `${P}b:1`;
const VICTIM = `${P}victim:1`;
const FRESH = `${P}fresh:1`;
const IMAGES = [IMG_A, IMG_B, VICTIM, FRESH];
const api = connectDocker();
// other suites tag images on the same engine meanwhile: look only at ours
const mine = (m: Map<string, string>) => new Map([...m].filter(([ref]) => ref.startsWith(P)));

describe('runtime/docker-client (real engine)', function () {
  this.timeout(120_000);
  let dir: string;

  before(function () {
    cleanup({ containerPrefix: P, images: IMAGES });
    buildOwnImage({ ref: IMG_A, version: 'a' });
    buildOwnImage({ ref: IMG_B, version: 'b' });
    dir = mkdtempSync(join(tmpdir(), 'caisson-rt-load-'));
  });

  after(function () {
    cleanup({ containerPrefix: P, images: IMAGES });
    rmSync(dir, { recursive: true, force: true });
  });

  it('pings the engine', async function () {
    await pingDocker(api, { waitMs: 1000 });
  });

  it('gives up with docker.unreachable after the bounded wait on a dead socket', async function () {
    const dead = connectDocker(join(dir, 'no-such.sock'));
    const err = await pingDocker(dead, { waitMs: 300, intervalMs: 100 }).catch((e: unknown) => e);
    assert.equal((err as CaissonError).code, 'docker.unreachable');
  });

  it('loads a plain and a gzip-compressed docker save archive', async function () {
    const id = imageId(IMG_A);
    const tar = join(dir, 'a.tar');
    docker('save', '-o', tar, IMG_A);
    writeFileSync(join(dir, 'a.tar.gz'), gzipSync(readFileSync(tar)));
    for (const file of ['a.tar', 'a.tar.gz']) {
      docker('rmi', IMG_A);
      assert.equal(await imageIdOf(api, IMG_A), undefined);
      const events: LoadProgressEvent[] = [];
      const sent: number[] = [];
      const result = await loadImageFromFile(api, join(dir, file), { onProgress: (e) => events.push(e), onBytes: (done, total) => sent.push(done / total) });
      assert.equal(await imageIdOf(api, IMG_A), id, file);
      assert.ok(result.loadedRefs.includes(IMG_A));
      // the bytes handed to the engine move the progress on every store
      assert.ok(sent.length > 0, file);
      assert.equal(sent.at(-1), 1, file);
      const unpacked = events.filter((e) => e.status === 'Loading layer').map((e) => e.progressDetail);
      if (imageStore() === 'classic') {
        // the classic store says how far it unpacked each layer (what the `unpacking` bar shows)
        assert.ok(unpacked.length > 0, file);
        assert.equal(unpacked.at(-1)?.current, unpacked.at(-1)?.total, file);
      } else {
        // the containerd store reports no layers: the bytes sent are the whole progress
        assert.deepEqual(unpacked, [], file);
      }
    }
  });

  it('says when the engine has the whole archive, after which the file is not needed', async function () {
    const id = imageId(IMG_B);
    const tar = join(dir, 'b.tar');
    docker('save', '-o', tar, IMG_B);
    const size = statSync(tar).size;
    docker('rmi', IMG_B);
    let sentAtUpload = -1;
    let sent = 0;
    let calls = 0;
    const result = await loadImageFromFile(api, tar, {
      onBytes: (done) => (sent = done),
      onUploaded: () => {
        calls++;
        sentAtUpload = sent;
        rmSync(tar); // what the pipeline does with its staged copy
      },
    });
    assert.equal(calls, 1);
    assert.equal(sentAtUpload, size);
    assert.equal(existsSync(tar), false);
    assert.ok(result.loadedRefs.includes(IMG_B));
    assert.equal(await imageIdOf(api, IMG_B), id);
  });

  it('reports a broken archive as docker.load_failed although the engine answers 200', async function () {
    const tar = join(dir, 'b.tar');
    docker('save', '-o', tar, IMG_B);
    const whole = readFileSync(tar);
    const broken = join(dir, 'broken.tar');
    writeFileSync(broken, whole.subarray(0, Math.floor(whole.length / 2)));
    const err = await loadImageFromFile(api, broken).catch((e: unknown) => e);
    assert.ok(err instanceof CaissonError);
    assert.equal((err as CaissonError).code, 'docker.load_failed');
    const garbage = join(dir, 'garbage.tar');
    writeFileSync(garbage, Buffer.from('this is not a tar archive at all\n'.repeat(100)));
    const err2 = await loadImageFromFile(api, garbage).catch((e: unknown) => e);
    assert.equal((err2 as CaissonError).code, 'docker.load_failed');
  });

  it('restores a tag a load moved and removes a tag a load added, except allowed ones', async function () {
    const idA = imageId(IMG_A);
    const idB = imageId(IMG_B);
    // an archive that tags B as VICTIM and as FRESH
    docker('tag', IMG_B, VICTIM);
    docker('tag', IMG_B, FRESH);
    const tar = join(dir, 'retag.tar');
    docker('save', '-o', tar, VICTIM, FRESH);
    docker('tag', IMG_A, VICTIM); // before the load, VICTIM names A
    docker('rmi', FRESH);

    const before = mine(await snapshotTags(api));
    assert.equal(before.get(VICTIM), idA);
    assert.equal(before.has(FRESH), false);
    await loadImageFromFile(api, tar);
    const after = mine(await snapshotTags(api));
    assert.equal(after.get(VICTIM), idB);
    assert.equal(after.get(FRESH), idB);

    const changes = await restoreTags(api, before, after, [IMG_B]);
    assert.deepEqual(changes.restored, [VICTIM]);
    assert.deepEqual(changes.removed, [FRESH]);
    assert.equal(await imageIdOf(api, VICTIM), idA);
    assert.equal(dockerOk('image', 'inspect', FRESH), false);
    assert.equal(await imageIdOf(api, IMG_B), idB);
    // nothing left to do the second time
    const again = await restoreTags(api, before, mine(await snapshotTags(api)), [IMG_B]);
    assert.deepEqual(again, { restored: [], removed: [], missing: [] });
  });
});
