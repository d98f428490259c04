// The checks of a stack package against the catalog, the installed versions and its image
// archive (pure: no engine, no disk).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { parseCatalog } from '../../../agent/config/services.js';
import { CaissonError, type ErrorCode } from '../../../agent/errors.js';
import { checkStack, checkStackImages, checkStackOrder } from '../../../agent/package/stack-checks.js';
import type { InstalledLookup, InstalledVersion } from '../../../agent/package/version-policy.js';
import type { ImageArchiveInfo, StackManifest, StackServiceEntry } from '../../../agent/package/types.js';

// db <- api <- worker; cache stands alone; web depends on api through nothing in the stack
const catalog = parseCatalog(`catalog_version = 1
${['db', 'api', 'worker', 'cache', 'web']
  .map((name) => {
    const deps = { api: ['db'], worker: ['api'], web: ['api'] }[name as 'api' | 'worker' | 'web'];
    return `[[services]]
name = "${name}"
service_revision = "${name}-v1"
platform = "linux/amd64"
runtime_mode = "docker"
${deps ? `depends_on = ${JSON.stringify(deps)}` : ''}
[services.docker]
container_name = "${name}"
`;
  })
  .join('\n')}`);

const idOf = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const entry = (service: string, over: Partial<StackServiceEntry> = {}): StackServiceEntry => ({
  service,
  service_revision: `${service}-v1`,
  version: '2.1.0',
  reference: `example/${service}:2.1.0`,
  image_id: idOf(service),
  ...over,
});
const stack = (services: StackServiceEntry[], over: Partial<StackManifest> = {}): StackManifest => ({
  format_version: 1,
  package_type: 'stack',
  package_version: '2.1.0',
  created_at: '2026-03-16T18:30:00Z',
  stack: { name: 'shop', platform: 'linux/amd64' },
  image: {},
  services,
  compatibility: { min_updater_version: '0.1.0' },
  ...over,
});
const image = (service: string, over: Partial<ImageArchiveInfo> = {}): ImageArchiveInfo => ({
  imageId: idOf(service),
  repoTags: [`example/${service}:2.1.0`],
  layout: 'legacy',
  diffIds: [`sha256:${'e'.repeat(64)}`],
  os: 'linux',
  architecture: 'amd64',
  runtimeConfig: null,
  indexNames: [],
  ...over,
});
const THREE = ['db', 'api', 'worker'];
const nothingInstalled: InstalledLookup = { installed: () => undefined };
const installedAt = (versions: Record<string, string>, packageId = 'p-old'): InstalledLookup => ({
  installed: (s: string): InstalledVersion | undefined =>
    versions[s] ? { package_version: versions[s]!, highest_version: versions[s]!, package_id: packageId } : undefined,
});

function codeOf(fn: () => unknown): ErrorCode | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof CaissonError);
    return (err as CaissonError).code;
  }
}
const check = (m: StackManifest, images: ImageArchiveInfo[] = m.services.map((s) => image(s.service)), installed = nothingInstalled, allowDowngrade = false) =>
  checkStack(m, { catalog, images, installed, packageId: 'p-new', allowDowngrade });

describe('stack package checks', () => {
  it('returns each service with its catalog entry, its image and its installed version, in the manifest order', () => {
    const members = check(stack(THREE.map((s) => entry(s))), undefined, installedAt({ db: '2.0.0', api: '2.0.0' }));
    assert.deepEqual(members.map((m) => [m.entry.service, m.service.name, m.image.imageId, m.fromVersion]), [
      ['db', 'db', idOf('db'), '2.0.0'],
      ['api', 'api', idOf('api'), '2.0.0'],
      ['worker', 'worker', idOf('worker'), undefined],
    ]);
  });

  it('allows two services on one image when it carries both references', () => {
    const shared = idOf('shared');
    const m = stack([entry('api', { image_id: shared }), entry('worker', { image_id: shared })]);
    const members = check(m, [image('shared', { repoTags: ['example/api:2.1.0', 'example/worker:2.1.0'] })]);
    assert.deepEqual(members.map((x) => x.image.imageId), [shared, shared]);
  });

  describe('order against depends_on', () => {
    const order = (names: string[]) => codeOf(() => checkStackOrder(stack(names.map((s) => entry(s))), catalog));
    it('accepts every order where a service follows what it depends on', () => {
      assert.equal(order(['db', 'api', 'worker']), 'ok');
      assert.equal(order(['cache', 'db', 'api', 'worker']), 'ok');
      assert.equal(order(['db', 'cache', 'api', 'worker']), 'ok');
      assert.equal(order(['api', 'cache']), 'ok'); // db is not in the stack
    });
    it('refuses a service before one it depends on, directly or through a service outside the stack', () => {
      assert.equal(order(['api', 'db']), 'manifest.bad_order');
      assert.equal(order(['db', 'worker', 'api']), 'manifest.bad_order');
      assert.equal(order(['worker', 'db']), 'manifest.bad_order'); // worker -> api -> db, api not in the stack
      assert.throws(() => checkStackOrder(stack([entry('api'), entry('db')]), catalog), { message: /switches api before db/ });
    });
  });

  const refused: Array<[string, () => unknown, ErrorCode, RegExp?]> = [
    ['a service named twice', () => check(stack([entry('db'), entry('api'), entry('db')])), 'manifest.duplicate_service', /"db" twice/],
    ['a service not in the catalog', () => check(stack([entry('db'), entry('mailer')])), 'manifest.unknown_service', /"mailer"/],
    ['another revision', () => check(stack([entry('db', { service_revision: 'db-v0' })])), 'manifest.revision_mismatch', /db revision "db-v0"/],
    ['another platform', () => check(stack([entry('db')], { stack: { name: 'shop', platform: 'linux/arm64' } })), 'manifest.platform_mismatch'],
    ['a wrong order', () => check(stack([entry('worker'), entry('api'), entry('db')])), 'manifest.bad_order'],
    ['an image_id the archive does not hold', () => check(stack(THREE.map((s) => entry(s))), [image('db'), image('api')]), 'image.not_in_archive', /for worker/],
    ['a reference its image does not carry', () => check(stack([entry('db')]), [image('db', { repoTags: ['example/db:2.0.0'] })]), 'image.not_in_archive', /not "example\/db:2.1.0"/],
    ['an image for another platform', () => check(stack([entry('db')]), [image('db', { architecture: 'arm64' })]), 'image.platform_mismatch', /linux\/arm64/],
    ['an image no service names', () => check(stack([entry('db')]), [image('db'), image('evil', { repoTags: [] })]), 'image.invalid', /no service of the stack names/],
    ['an extra tag (docker load would move it)', () => check(stack([entry('db')]), [image('db', { repoTags: ['example/db:2.1.0', 'busybox:latest'] })]), 'image.reference_mismatch', /busybox:latest/],
    [
      'an index.json name no service gives that image',
      () => check(stack([entry('db')]), [image('db', { layout: 'oci', indexNames: ['docker.io/example/db:2.1.0', 'docker.io/library/busybox:latest'] })]),
      'image.reference_mismatch',
      /busybox/,
    ],
    ['a downgrade of one member', () => check(stack(THREE.map((s) => entry(s, { version: s === 'api' ? '1.9.0' : '2.1.0' }))), undefined, installedAt({ api: '2.0.0' })), 'policy.downgrade', /api 1.9.0/],
    ['a member at its installed version from another package', () => check(stack([entry('db', { version: '2.0.0' })]), undefined, installedAt({ db: '2.0.0' })), 'policy.downgrade'],
  ];
  for (const [what, fn, code, message] of refused) {
    it(`refuses ${what}: ${code}`, () => {
      assert.equal(codeOf(fn), code);
      if (message) assert.throws(fn, { message });
    });
  }

  it('the local operator may go back a version for every member (--allow-downgrade)', () => {
    const m = stack([entry('db', { version: '1.0.0' })]);
    assert.equal(codeOf(() => check(m, undefined, installedAt({ db: '2.0.0' }), true)), 'ok');
  });

  it('checks the OCI names of a shared image against every service on it', () => {
    const shared = idOf('shared');
    const m = stack([entry('api', { image_id: shared }), entry('worker', { image_id: shared })]);
    const names = ['docker.io/example/api:2.1.0', 'docker.io/example/worker:2.1.0'];
    const img = image('shared', { layout: 'oci', repoTags: ['example/api:2.1.0', 'example/worker:2.1.0'], indexNames: names });
    assert.deepEqual(checkStackImages(m, [img]).map((i) => i.imageId), [shared, shared]);
  });
});
