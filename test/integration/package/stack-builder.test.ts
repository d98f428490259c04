// Stack packages against the real Docker engine: several local images in one docker save,
// built, staged and validated exactly as a device does, and the CLI that builds them. What the
// builder refuses before it reaches an engine is in test/unit/package/stack-builder.test.ts.
import assert from 'node:assert/strict';
import { assertFields } from '../../support/assert.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCatalog } from '../../../agent/config/services.js';
import { CaissonError } from '../../../agent/errors.js';
import { buildStackPackage, type StackBuildOptions } from '../../../agent/package/builder.js';
import { parseManifest } from '../../../agent/package/manifest.js';
import { stagePackage } from '../../../agent/package/reader.js';
import { generateKeyPair, loadTrustedKeys } from '../../../agent/package/signature.js';
import type { StackManifest } from '../../../agent/package/types.js';
import { validateStagedStack } from '../../../agent/package/validate.js';
import type { InstalledLookup } from '../../../agent/package/version-policy.js';
import { caisson, ensureBuilt } from '../../support/cli.js';
import { buildTestImage, cleanupTestObjects, differsFromArchive, docker, imageExists, imageId } from '../../support/images.js';

const NAMES = ['db', 'api', 'worker'];
const refOf = (s: string): string => `caisson-pkgtest/stack-${s}:2.1.0`;
const catalog = parseCatalog(`catalog_version = 1
${NAMES.map(
  (s, i) => `[[services]]
name = "${s}"
service_revision = "${s}-v1"
platform = "linux/amd64"
runtime_mode = "docker"
${i > 0 ? `depends_on = ["${NAMES[i - 1]}"]` : ''}
[services.docker]
container_name = "${s}"
`,
).join('\n')}`);
const members = NAMES.map((s) => ({ service: s, serviceRevision: `${s}-v1`, imageRef: refOf(s) }));
const nothingInstalled: InstalledLookup = { installed: () => undefined };

describe('stack package builder (build → stage → validate on the engine)', function () {
  this.timeout(180_000);
  let work: string;
  const ids = new Map<string, string>();
  const base = (): StackBuildOptions => ({ stack: 'shop', platform: 'linux/amd64', version: '2.1.0', members, out: join(work, 'shop.edgepkg') });
  const ctx = { catalog, trustedKeys: [], updaterVersion: '0.1.0' };

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'caisson-stack-builder-'));
    for (const s of NAMES) ids.set(s, buildTestImage({ ref: refOf(s), version: `${s}-2.1.0` }));
  });
  after(() => {
    cleanupTestObjects(NAMES.map(refOf));
    rmSync(work, { recursive: true, force: true });
  });

  it('saves the three images in one image.tar; every service pins its image, which the device finds and which loads back', async () => {
    const out = join(work, 'shop.edgepkg');
    const built = await buildStackPackage({ ...base(), createdAt: '2026-03-16T18:30:00Z' });
    assert.equal(execFileSync('tar', ['-tf', out], { encoding: 'utf8' }), 'manifest.toml\nimage.tar\n');
    assert.deepEqual(readdirSync(work), ['shop.edgepkg']); // no temporary files left

    const staged = await stagePackage(out, join(work, 'staging'));
    assert.equal(staged.packageId, built.packageId);
    assert.equal(staged.archiveImages?.length, 3);
    assert.equal(staged.imageArchive, undefined); // not one image: no service package could use it
    const manifest = parseManifest(staged.manifestBytes) as StackManifest;
    assertFields(manifest, { package_type: 'stack', package_version: '2.1.0', stack: { name: 'shop', platform: 'linux/amd64' } });
    assert.deepEqual(manifest.image, { sha256: built.imageSha256, size: built.imageSize });

    const v = await validateStagedStack(staged, { ...ctx, installed: nothingInstalled }, manifest);
    assert.deepEqual(v.members.map((m) => [m.entry.service, m.service.name, m.entry.version, m.entry.reference, m.fromVersion]), NAMES.map((s) => [s, s, '2.1.0', refOf(s), undefined]));
    for (const m of v.members) {
      assert.equal(m.entry.image_id, m.image.imageId);
      assert.deepEqual(m.image.repoTags, [m.entry.reference]);
      assert.equal(differsFromArchive(m.entry.reference, m.image), undefined, m.entry.service);
    }

    // one docker load of the staged image.tar brings back all three, tags and IDs
    for (const s of NAMES) docker('rmi', refOf(s));
    assert.equal(NAMES.some((s) => imageExists(refOf(s))), false);
    docker('load', '-i', staged.imagePath);
    for (const s of NAMES) assert.equal(imageId(refOf(s)), ids.get(s), s);
    rmSync(join(work, 'staging'), { recursive: true });

    // a manifest whose second service pins an image the archive does not hold is refused
    const altered: StackManifest = { ...manifest, services: manifest.services.map((e, i) => (i === 1 ? { ...e, image_id: `sha256:${'0'.repeat(64)}` } : e)) };
    const again = await stagePackage(out, join(work, 'staging-2'), { copyImage: false });
    const err = await validateStagedStack(again, ctx, altered).catch((e: unknown) => e);
    assert.ok(err instanceof CaissonError);
    assert.equal(err.code, 'image.not_in_archive');
    assert.match((err as Error).message, /for api/);
    rmSync(out);
  });

  it('signs the stack manifest with --sign; a device with that key verifies it', async () => {
    const keys = join(work, 'keys');
    execFileSync('mkdir', [keys]);
    const files = generateKeyPair(join(keys, 'vendor'));
    const out = join(work, 'signed.edgepkg');
    await buildStackPackage({ ...base(), out, signKeyPath: files.privateKeyPath });
    assert.equal(execFileSync('tar', ['-tf', out], { encoding: 'utf8' }), 'manifest.toml\nimage.tar\nmanifest.toml.sig\n');
    const staged = await stagePackage(out, join(work, 'staging-signed'), { copyImage: false });
    const v = await validateStagedStack(staged, { ...ctx, trustedKeys: loadTrustedKeys(keys) }, parseManifest(staged.manifestBytes) as StackManifest);
    assert.equal(v.signature.verified, true);
    rmSync(join(work, 'staging-signed'), { recursive: true });
    rmSync(out);
    rmSync(keys, { recursive: true });
  });

  it('two services on one image: one image in the archive, both services pin it', async () => {
    const out = join(work, 'shared.edgepkg');
    const shared = [{ service: 'api', serviceRevision: 'api-v1', imageRef: refOf('api') }, { service: 'worker', serviceRevision: 'worker-v1', imageRef: refOf('api'), version: '2.1.1' }];
    await buildStackPackage({ ...base(), members: shared, out });
    const staged = await stagePackage(out, join(work, 'staging-shared'), { copyImage: false });
    assert.equal(staged.archiveImages?.length, 1);
    const v = await validateStagedStack(staged, ctx, parseManifest(staged.manifestBytes) as StackManifest);
    const only = staged.archiveImages![0]!;
    assert.deepEqual(only.repoTags, [refOf('api')]);
    assert.equal(differsFromArchive(refOf('api'), only), undefined);
    assert.deepEqual(v.members.map((m) => [m.entry.service, m.entry.version, m.entry.image_id]), [
      ['api', '2.1.0', only.imageId],
      ['worker', '2.1.1', only.imageId],
    ]);
    rmSync(join(work, 'staging-shared'), { recursive: true });
    rmSync(out);
  });

  it('names the image that is not in the engine, and leaves nothing behind', async () => {
    const before = readdirSync(work);
    const missing = await buildStackPackage({ ...base(), members: [...members, { service: 'cache', serviceRevision: 'c1', imageRef: 'caisson-pkgtest/not-there:1.0.0' }] }).catch((e: unknown) => e);
    assert.ok(missing instanceof CaissonError);
    assert.equal(missing.code, 'usage.invalid');
    assert.match((missing as Error).message, /not-there:1\.0\.0 is not in the local Docker engine/);
    assert.deepEqual(readdirSync(work), before);
  });

  it('the CLI builds a stack from --stack and --member flags, and says what is wrong with a bad mix', () => {
    ensureBuilt();
    const out = join(work, 'cli.edgepkg');
    const flags = ['--platform', 'linux/amd64', '--version', '2.1.0', '-o', out];
    const ok = caisson(['package', 'build', '--stack', 'shop', ...NAMES.map((s) => ['--member', `${s},${s}-v1,${refOf(s)}`]).flat(), ...flags, '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((ok.json as { out: string }).out, out);
    assert.equal(execFileSync('tar', ['-tf', out], { encoding: 'utf8' }), 'manifest.toml\nimage.tar\n');
    rmSync(out);
    const mixes: Array<[string[], RegExp]> = [
      [['--stack', 'shop', '--member', `api,api-v1,${refOf('api')}`, '--image', refOf('api')], /not --image/],
      [['--stack', 'shop'], /at least one --member/],
      [['--stack', 'shop', '--member', 'api,api-v1'], /is not service,revision,image/],
      [['--member', `api,api-v1,${refOf('api')}`], /give --stack/],
      [['--image', refOf('api')], /needs --service, --service-revision/],
    ];
    for (const [args, why] of mixes) {
      const r = caisson(['package', 'build', ...args, ...flags]);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /usage\.invalid/, args.join(' '));
      assert.match(r.stderr, why, args.join(' '));
    }
  });
});
