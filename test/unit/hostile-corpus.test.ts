// Every hostile package must be refused with its own expected code, leave no staged file
// behind, and write nothing outside the staging folder. The image inside is a crafted
// docker-save archive (test/support/image-archives.ts), so no engine is needed; the same
// cases on a real `docker save` through the real CLI are test/integration/hostile-cli.test.ts.
import assert from 'node:assert/strict';
import { assertIncludes } from '../support/assert.js';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { CaissonError } from '../../agent/errors.js';
import { stagePackage } from '../../agent/package/reader.js';
import { loadTrustedKeys } from '../../agent/package/signature.js';
import { validateStaged } from '../../agent/package/validate.js';
import {
  HOSTILE_IMAGE_REF,
  buildValidPackage,
  createHostileContext,
  hostileCases,
  removeHostileContext,
  type HostileContext,
} from '../support/hostile.js';
import { craftTar, legacyImage } from '../support/image-archives.js';

/** Every path under `root` (files and folders) with size, except those under `skip`. */
function snapshot(root: string, skip: string): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (p === skip) continue;
      const st = statSync(p, { throwIfNoEntry: false });
      out.set(relative(root, p), st?.isFile() ? st.size : -1);
      if (st?.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

describe('hostile package corpus', function () {
  this.timeout(180_000);
  let work: string;
  let ctx: HostileContext;
  const cases = hostileCases();

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'caisson-hostile-'));
    const imageTarPath = join(work, 'image.tar');
    writeFileSync(imageTarPath, craftTar(legacyImage({ ref: HOSTILE_IMAGE_REF }).entries));
    ctx = await createHostileContext(work, { imageTarPath });
  });
  after(() => {
    if (ctx) removeHostileContext(ctx);
    rmSync(work, { recursive: true, force: true });
  });

  it('holds at least 40 cases with distinct names', () => {
    assert.ok(cases.length >= 40);
    assert.equal(new Set(cases.map((c) => c.name)).size, cases.length);
  });

  it('covers every package, manifest, integrity, image and signature code the reader and checks raise', () => {
    const codes = new Set(cases.map((c) => c.expectCode));
    for (const code of [
      'package.not_found', 'package.not_regular_file', 'package.not_tar', 'package.truncated', 'package.trailing_garbage',
      'package.path_escape', 'package.unexpected_entry', 'package.link_entry', 'package.special_entry',
      'package.duplicate_entry', 'package.header_mismatch', 'package.entry_too_large', 'package.missing_manifest',
      'package.missing_image', 'manifest.too_large', 'manifest.not_utf8', 'manifest.invalid_toml', 'manifest.invalid',
      'manifest.unsupported_format', 'manifest.unsupported_type', 'manifest.unknown_service', 'manifest.revision_mismatch',
      'manifest.platform_mismatch', 'manifest.updater_too_old', 'integrity.size_mismatch', 'integrity.sha256_mismatch',
      'image.invalid', 'image.too_large', 'image.platform_mismatch', 'image.reference_mismatch', 'signature.missing', 'signature.invalid', 'signature.unpinned_image',
      'signature.no_issued_at', 'policy.expired', 'manifest.not_for_this_device',
    ] as const) {
      assert.equal(codes.has(code), true, code);
    }
  });

  for (const [withKeys, label] of [[false, 'unsigned, no trusted keys'], [true, 'signed, trusted keys']] as const) {
    it(`accepts the valid package the cases are derived from (${label})`, async () => {
      const dir = join(work, `valid-${withKeys}`);
      const path = buildValidPackage(dir, ctx, withKeys);
      const staged = await stagePackage(path, join(dir, 'staging'));
      const keys = withKeys ? loadTrustedKeys(ctx.trustedKeyDir) : [];
      const v = await validateStaged(staged, { catalog: ctx.catalog, trustedKeys: keys, updaterVersion: ctx.updaterVersion });
      assert.equal(v.service.name, ctx.service.name);
      assert.equal(v.signature.verified, withKeys);
      assert.deepEqual(staged.imageArchive?.repoTags, [ctx.imageRef]);
    });
  }

  cases.forEach((c, i) => {
    it(`rejects: ${c.name} → ${c.expectCode}`, async function () {
      this.timeout(20_000); // a FIFO that blocked the reader would hang here
      const caseDir = join(work, 'cases', String(i));
      const path = c.build(caseDir, ctx);
      const staging = join(caseDir, 'staging');
      const before = snapshot(work, staging);
      const keys = c.trustedKeys ? loadTrustedKeys(ctx.trustedKeyDir) : [];
      assert.equal(keys.length, c.trustedKeys ? 1 : 0);

      let err: unknown;
      let stageFailed = false;
      try {
        let staged;
        try {
          staged = await stagePackage(path, staging);
        } catch (e) {
          stageFailed = true;
          throw e;
        }
        await validateStaged(staged, { catalog: ctx.catalog, trustedKeys: keys, updaterVersion: ctx.updaterVersion });
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof CaissonError, 'the package was accepted');
      assert.equal((err as CaissonError).code, c.expectCode, (err as Error).message);
      assert.equal(typeof (err as CaissonError).message, 'string');
      assert.notEqual((err as CaissonError).message, '');

      if (stageFailed) {
        assert.equal(existsSync(staging), false, 'staging folder left behind');
      } else {
        // staged fine, refused by a later check: only the fixed names are in the staging folder
        for (const name of readdirSync(staging)) assertIncludes(['manifest.toml', 'image.tar', 'image.tar.gz', 'manifest.toml.sig'], name);
        rmSync(staging, { recursive: true });
      }
      assert.deepEqual(snapshot(work, staging), before);
      assert.equal(existsSync('/abs'), false);
    });
  });
});
