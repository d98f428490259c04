// A compressed image is opened only after its signature and pins are checked, and then
// inflated only so far: a gzip bomb costs a hash over its compressed bytes, not its inflation.
import assert from 'node:assert/strict';
import { assertIncludes } from '../../support/assert.js';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CaissonError } from '../../../agent/errors.js';
import { stagePackage } from '../../../agent/package/reader.js';
import { loadTrustedKeys } from '../../../agent/package/signature.js';
import { tarEnd, tarEntry } from '../../../agent/package/tar-writer.js';
import type { StageLimits } from '../../../agent/package/types.js';
import { validateStaged } from '../../../agent/package/validate.js';
import { createHostileContext, gzipBomb, gzipPackageBytes, type HostileContext } from '../../support/hostile.js';

const REF = 'caisson-pkgtest/bomb:1.0.0';
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A minimal docker-save archive (legacy layout): one config, one empty layer, manifest.json. */
function tinyImageTar(ref: string): Buffer {
  const layer = tarEnd();
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(layer)}`] } }));
  const configName = `${sha256(config)}.json`;
  const layerDir = sha256(layer);
  const manifest = JSON.stringify([{ Config: configName, RepoTags: [ref], Layers: [`${layerDir}/layer.tar`] }]);
  return Buffer.concat([
    tarEntry({ name: `${layerDir}/`, typeflag: '5', mode: 0o755 }),
    tarEntry({ name: `${layerDir}/layer.tar` }, layer),
    tarEntry({ name: configName }, config),
    tarEntry({ name: 'manifest.json' }, Buffer.from(manifest)),
    tarEnd(),
  ]);
}

describe('a gzip bomb (image.tar.gz)', function () {
  this.timeout(60_000);
  const BOMB_MIB = 1024; // 1 GiB of zeros in about 1 MiB: inflating it takes seconds of CPU
  let work: string;
  let ctx: HostileContext;
  let bomb: Buffer;
  let n = 0;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'caisson-bomb-'));
    mkdirSync(join(work, 'img'));
    writeFileSync(join(work, 'img', 'image.tar'), tinyImageTar(REF));
    ctx = await createHostileContext(work, { imageRef: REF, imageTarPath: join(work, 'img', 'image.tar') });
    bomb = gzipBomb(BOMB_MIB);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  /**
   * Stage and validate; the error (or undefined) and what staging left. Unsigned, the bomb may
   * inflate to 20 times its ~1 MiB: an error other than image.too_large means validation
   * stopped before inflating it (no CPU timing: a timed assertion fails on a busy machine).
   */
  async function apply(pkg: Buffer, opts: { keys: boolean; limits?: Partial<StageLimits> }) {
    const dir = join(work, `case-${n++}`);
    mkdirSync(dir);
    const path = join(dir, 'p.edgepkg');
    writeFileSync(path, pkg);
    const keys = opts.keys ? loadTrustedKeys(ctx.trustedKeyDir) : [];
    let err: unknown;
    let inspectedWhileStaging: unknown = 'not staged';
    try {
      const staged = await stagePackage(path, join(dir, 'staging'));
      inspectedWhileStaging = staged.imageArchive ?? staged.imageArchiveProblem;
      await validateStaged(staged, { catalog: ctx.catalog, trustedKeys: keys, updaterVersion: ctx.updaterVersion, ...(opts.limits ? { limits: opts.limits } : {}) });
    } catch (e) {
      err = e;
    }
    return { err, inspectedWhileStaging, staging: readdirSync(join(dir, 'staging')) };
  }

  it('is refused for its missing signature before a byte is inflated', async () => {
    const r = await apply(gzipPackageBytes(ctx, bomb), { keys: true });
    assert.ok(r.err instanceof CaissonError);
    assert.equal(r.err.code, 'signature.missing');
    assert.equal(r.inspectedWhileStaging, undefined, 'staging looked inside the compressed image');
  });

  it('is refused for pins that do not match before it is inflated, even when the manifest is signed', async () => {
    const pins = `sha256 = "${'0'.repeat(64)}"\nsize = ${bomb.length}\n`;
    const r = await apply(gzipPackageBytes(ctx, bomb, { pins, signWith: ctx.trustedPrivateKeyPem }), { keys: true });
    assert.ok(r.err instanceof CaissonError);
    assert.equal(r.err.code, 'integrity.sha256_mismatch');
  });

  /**
   * The bomb without its last KiB (nearly 1 GiB of zeros, then a cut stream): inflated to its
   * end it is a broken gzip stream (image.invalid), so image.too_large shows inflation stopped
   * at the limit.
   */
  const cutBomb = (): Buffer => bomb.subarray(0, bomb.length - 1024);

  it('unsigned on a device without keys, inflates at most 20 times its size, then stops with image.too_large', async () => {
    const r = await apply(gzipPackageBytes(ctx, cutBomb()), { keys: false });
    assert.ok(r.err instanceof CaissonError);
    assert.equal(r.err.code, 'image.too_large');
    assert.match((r.err as Error).message, /inflates to more than 20\.\d MiB/);
  });

  it('signed with matching pins, inflates up to the device image limit and no further', async () => {
    const r = await apply(gzipPackageBytes(ctx, cutBomb(), { signWith: ctx.trustedPrivateKeyPem }), { keys: true, limits: { maxImageBytes: 64 * 1024 * 1024 } });
    assert.ok(r.err instanceof CaissonError);
    assert.equal(r.err.code, 'image.too_large');
    assert.match((r.err as Error).message, /more than 64\.0 MiB/);
  });

  it('a genuine image.tar.gz is read after the checks and gives its image ID and tags', async () => {
    const gz = gzipSync(ctx.imageTar);
    for (const keys of [false, true]) {
      const dir = join(work, `good-${n++}`);
      mkdirSync(dir);
      const path = join(dir, 'p.edgepkg');
      writeFileSync(path, gzipPackageBytes(ctx, gz, keys ? { signWith: ctx.trustedPrivateKeyPem } : {}));
      // a validation that imports nothing still needs the compressed copy to open it later
      const staged = await stagePackage(path, join(dir, 'staging'), { copyImage: false });
      const pinnedBefore = staged.imageArchive; // found by validation, after the checks
      assert.equal(pinnedBefore, undefined);
      assertIncludes(readdirSync(staged.dir).sort(), 'image.tar.gz');
      const v = await validateStaged(staged, { catalog: ctx.catalog, trustedKeys: keys ? loadTrustedKeys(ctx.trustedKeyDir) : [], updaterVersion: ctx.updaterVersion });
      assert.equal(v.signature.verified, keys);
      assert.deepEqual(staged.imageArchive?.repoTags, [REF]);
      assert.match(staged.imageArchive?.imageId ?? '', /^sha256:[0-9a-f]{64}$/);
    }
  });

  it('refuses bytes after the gzip stream that gunzip would skip (the engine might read them)', async () => {
    const gz = Buffer.concat([gzipSync(ctx.imageTar), Buffer.alloc(1024)]);
    const r = await apply(gzipPackageBytes(ctx, gz), { keys: false });
    assert.ok(r.err instanceof CaissonError);
    assert.equal(r.err.code, 'image.invalid');
    assert.match((r.err as Error).message, /1024 bytes after its gzip stream/);
  });
});
