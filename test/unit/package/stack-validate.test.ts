// A stack package staged and validated as a device does, without an engine: crafted
// docker-save archives of three images (both layouts, plain and gzipped), the strict reader,
// then validateStagedStack. Each hostile variant differs from the valid one in one place.
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseCatalog } from '../../../agent/config/services.js';
import { CaissonError, type ErrorCode } from '../../../agent/errors.js';
import { parseManifest, renderManifest } from '../../../agent/package/manifest.js';
import { stagePackage } from '../../../agent/package/reader.js';
import { signManifest } from '../../../agent/package/signature.js';
import { tarEnd, tarEntry } from '../../../agent/package/tar-writer.js';
import type { StackManifest, StackServiceEntry } from '../../../agent/package/types.js';
import { validateStagedStack, type StackValidationContext } from '../../../agent/package/validate.js';
import { craftLayer, legacyImage, multiImageArchive, ociImage, type CraftedImage } from '../../support/image-archives.js';

const NAMES = ['db', 'api', 'worker'];
const refOf = (s: string) => `example/${s}:2.1.0`;
const catalog = parseCatalog(`catalog_version = 1
${NAMES.map((s, i) => `[[services]]
name = "${s}"
service_revision = "${s}-v1"
platform = "linux/amd64"
runtime_mode = "${i === 2 ? 'compose' : 'docker'}"
${i > 0 ? `depends_on = ["${NAMES[i - 1]}"]` : ''}
${i === 2 ? `[services.compose]\nproject = "shop"\nfile = "/etc/caisson/compose/shop.yaml"\nservice = "${s}"` : `[services.docker]\ncontainer_name = "${s}"`}
`).join('\n')}`);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

type Craft = typeof legacyImage;
const imagesFor = (craft: Craft): CraftedImage[] => {
  const base = craftLayer('base.txt', 'a layer all three share\n');
  return NAMES.map((s) => craft({ ref: refOf(s), layers: [base, craftLayer(`${s}.txt`, `${s} 2.1.0\n`)], cmd: [`/bin/${s}`] }));
};

interface Built {
  manifest: StackManifest;
  bytes: Buffer;
}

/** The package: manifest.toml pinning `image`, the image entry, the signature if a key is given. */
function pack(manifest: StackManifest, image: Buffer, opts: { gz?: boolean; signWith?: string; pin?: boolean } = {}): Built {
  const entry = opts.gz ? gzipSync(image) : image;
  const m: StackManifest = { ...manifest, image: opts.pin === false ? {} : { sha256: sha(entry), size: entry.length } };
  const text = Buffer.from(renderManifest(m));
  const parts = [tarEntry({ name: 'manifest.toml' }, text), tarEntry({ name: opts.gz ? 'image.tar.gz' : 'image.tar' }, entry)];
  if (opts.signWith) parts.push(tarEntry({ name: 'manifest.toml.sig' }, Buffer.from(signManifest(text, opts.signWith) + '\n')));
  return { manifest: m, bytes: Buffer.concat([...parts, tarEnd()]) };
}

function manifestFor(images: CraftedImage[], over: (e: StackServiceEntry, i: number) => Partial<StackServiceEntry> = () => ({})): StackManifest {
  return {
    format_version: 1,
    package_type: 'stack',
    package_version: '2.1.0',
    created_at: '2026-03-16T18:30:00Z',
    issued_at: '2026-03-16T18:30:00Z',
    stack: { name: 'shop', platform: 'linux/amd64' },
    image: {},
    services: NAMES.map((s, i) => {
      const e = { service: s, service_revision: `${s}-v1`, version: '2.1.0', reference: refOf(s), image_id: images[i]!.configDigest };
      return { ...e, ...over(e, i) };
    }),
    compatibility: { min_updater_version: '0.1.0' },
  };
}

describe('stack package: staged and validated without an engine', function () {
  this.timeout(30_000);
  let work: string;
  let n = 0;
  const ctx: StackValidationContext = { catalog, trustedKeys: [], updaterVersion: '0.1.0', installed: { installed: () => undefined } };

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'caisson-stack-validate-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  async function validate(built: Built, c: StackValidationContext = ctx) {
    const file = join(work, `p${++n}.edgepkg`);
    writeFileSync(file, built.bytes);
    const staged = await stagePackage(file, join(work, `s${n}`), { copyImage: false });
    return { staged, result: await validateStagedStack(staged, c, parseManifest(staged.manifestBytes) as StackManifest) };
  }
  async function codeOf(built: Built, c: StackValidationContext = ctx): Promise<ErrorCode | 'ok'> {
    try {
      await validate(built, c);
      return 'ok';
    } catch (err) {
      assert.ok(err instanceof CaissonError);
      return (err as CaissonError).code;
    }
  }

  for (const [layout, craft] of [['legacy', legacyImage], ['OCI', ociImage]] as const) {
    for (const gz of [false, true]) {
      it(`accepts three services in one ${layout} archive${gz ? ', gzipped' : ''}; each member gets its image`, async () => {
        const images = imagesFor(craft);
        // a crafted archive is mostly tar padding, which gzips far beyond the unsigned ratio cap
        const { staged, result } = await validate(pack(manifestFor(images), multiImageArchive(images), { gz }), { ...ctx, limits: { maxInflateRatio: 1000 } });
        assert.equal(staged.archiveImages?.length, 3);
        assert.deepEqual(result.members.map((m) => [m.service.name, m.service.runtime_mode, m.image.imageId, m.image.diffIds]), NAMES.map((s, i) => [s, i === 2 ? 'compose' : 'docker', images[i]!.configDigest, images[i]!.diffIds]));
      });
    }
  }

  it('verifies a signed stack with a trusted key, and wants a signature when keys are configured', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const keys = { ...ctx, trustedKeys: [createPublicKey(publicKey.export({ type: 'spki', format: 'pem' }))] };
    const images = imagesFor(legacyImage);
    const { result } = await validate(pack(manifestFor(images), multiImageArchive(images), { signWith: pem }), keys);
    assert.equal(result.signature.verified, true);
    assert.equal(await codeOf(pack(manifestFor(images), multiImageArchive(images)), keys), 'signature.missing');
    assert.equal(await codeOf(pack(manifestFor(images), multiImageArchive(images), { signWith: pem, pin: false }), keys), 'signature.unpinned_image');
  });

  describe('refuses, before anything changes', () => {
    const images = imagesFor(legacyImage);
    const archive = multiImageArchive(images);
    const cases: Array<[string, () => Built, ErrorCode]> = [
      ['a wrong order', () => pack({ ...manifestFor(images), services: [...manifestFor(images).services].reverse() }, archive), 'manifest.bad_order'],
      ['a service named twice', () => pack(manifestFor(images, (e, i) => (i === 2 ? { service: 'db', service_revision: 'db-v1' } : {})), archive), 'manifest.duplicate_service'],
      ['a service not in the catalog', () => pack(manifestFor(images, (e, i) => (i === 2 ? { service: 'mailer' } : {})), archive), 'manifest.unknown_service'],
      ['a member pinning another image', () => pack(manifestFor(images, (e, i) => (i === 1 ? { image_id: `sha256:${'0'.repeat(64)}` } : {})), archive), 'image.not_in_archive'],
      ['an archive without the second image', () => pack(manifestFor(images), multiImageArchive([images[0]!, images[2]!])), 'image.not_in_archive'],
      ['an archive with an image no service names', () => pack(manifestFor(images), multiImageArchive([...images, legacyImage({ ref: 'busybox:latest', layers: [craftLayer('x', 'x')] })])), 'image.invalid'],
      ['an archive that also tags busybox:latest on a member\'s image', () => {
        const tagged = images.map((img, i) => (i === 0 ? { ...img, entries: img.entries.map((e) => (e.name === 'manifest.json' ? { name: e.name, data: String((e as { data: string }).data).replace('"RepoTags":["example/db:2.1.0"]', '"RepoTags":["example/db:2.1.0","busybox:latest"]') } : e)) } : img));
        return pack(manifestFor(images), multiImageArchive(tagged));
      }, 'image.reference_mismatch'],
      ['an image entry changed after the manifest pinned it', () => {
        const built = pack(manifestFor(images), archive);
        const at = built.bytes.indexOf(Buffer.from('worker 2.1.0'));
        const bytes = Buffer.from(built.bytes);
        bytes[at] = 'W'.charCodeAt(0); // the third image's layer: one byte
        return { ...built, bytes };
      }, 'integrity.sha256_mismatch'],
      ['a corrupt second image, pinned as it is (config no longer its digest)', () => {
        const bad = multiImageArchive(images);
        const cfg = Buffer.from(JSON.stringify(images[1]!.config));
        const at = bad.indexOf(cfg);
        bad[at + cfg.indexOf(Buffer.from('/bin/api')) + 1] = 'B'.charCodeAt(0);
        return pack(manifestFor(images), bad);
      }, 'image.invalid'],
      ['a member going back a version', () => pack(manifestFor(images, (e, i) => (i === 1 ? { version: '1.0.0' } : {})), archive), 'policy.downgrade'],
    ];
    for (const [what, make, code] of cases) {
      it(`${what}: ${code}`, async () => {
        const c: StackValidationContext = { ...ctx, installed: { installed: (s) => (s === 'api' ? { package_version: '2.0.0', highest_version: '2.0.0', package_id: 'old' } : undefined) } };
        assert.equal(await codeOf(make(), c), code);
      });
    }
  });
});
