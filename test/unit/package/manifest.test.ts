import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { CaissonError, type ErrorCode } from '../../../agent/errors.js';
import { isRfc3339, parseManifest, parseServiceManifest, renderManifest } from '../../../agent/package/manifest.js';
import type { Manifest } from '../../../agent/package/types.js';

const SHA = 'a'.repeat(64);
const good = (over: Record<string, string> = {}, extra = ''): string => {
  const f = {
    format_version: '1', package_type: '"service"', package_version: '"1.2.3"', created_at: '"2026-03-16T18:30:00Z"',
    service: '"frontend"', service_revision: '"frontend-v1"', platform: '"linux/amd64"', reference: '"example/frontend:1.2.3"',
    pins: `sha256 = "${SHA}"\nsize = 123456789`, compat: '[compatibility]\nmin_updater_version = "0.1.0"', ...over,
  };
  return `format_version = ${f.format_version}\npackage_type = ${f.package_type}\npackage_version = ${f.package_version}\ncreated_at = ${f.created_at}\n${extra}
[target]\nservice = ${f.service}\nservice_revision = ${f.service_revision}\nplatform = ${f.platform}\n
[image]\nreference = ${f.reference}\n${f.pins}\n\n${f.compat}\n`;
};
const codeOf = (text: string | Buffer): ErrorCode | 'ok' => {
  try {
    parseManifest(Buffer.isBuffer(text) ? text : Buffer.from(text));
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof CaissonError);
    return (err as CaissonError).code;
  }
};

describe('manifest', () => {
  it('parses the documented example', () => {
    const m = parseManifest(Buffer.from(good()));
    assert.deepEqual(m, {
      format_version: 1, package_type: 'service', package_version: '1.2.3', created_at: '2026-03-16T18:30:00Z',
      target: { service: 'frontend', service_revision: 'frontend-v1', platform: 'linux/amd64' },
      image: { reference: 'example/frontend:1.2.3', sha256: SHA, size: 123456789 },
      compatibility: { min_updater_version: '0.1.0' },
    });
  });
  it('accepts a manifest without image pins (format 1, unsigned packages)', () => {
    const m = parseManifest(Buffer.from(good({ pins: '' })));
    assert.deepEqual(m.image, { reference: 'example/frontend:1.2.3' });
  });
  it('accepts registry hosts with ports and pre-release versions', () => {
    assert.equal(codeOf(good({ reference: '"registry.local:5000/team/app:1.2.3-rc.1"', package_version: '"2.0.0-rc.1+b5"' })), 'ok');
  });
  const cases: Array<[string, string | Buffer, ErrorCode]> = [
    ['non-UTF-8', Buffer.concat([Buffer.from(good()), Buffer.from([0x23, 0xc3, 0x28, 0x0a])]), 'manifest.not_utf8'],
    ['over 64 KiB', good() + '#' + 'x'.repeat(64 * 1024), 'manifest.too_large'],
    ['TOML syntax', good().replace('[image]', '[image'), 'manifest.invalid_toml'],
    ['NUL character', good() + '\0', 'manifest.invalid_toml'],
    ['unknown top-level key', good({}, 'hooks = ["reboot"]\n'), 'manifest.invalid'],
    ['unknown nested key', good({ pins: `sha256 = "${SHA}"\nsize = 1\nentrypoint = "sh"` }), 'manifest.invalid'],
    ['integer beyond 2^53', good({ pins: `size = 9007199254740993` }), 'manifest.invalid'],
    ['float size', good({ pins: `size = 12.5` }), 'manifest.invalid'],
    ['zero size', good({ pins: `size = 0` }), 'manifest.invalid'],
    ['negative size', good({ pins: `size = -5` }), 'manifest.invalid'],
    ['size as string', good({ pins: `size = "5"` }), 'manifest.invalid'],
    ['short sha256', good({ pins: `sha256 = "abc"` }), 'manifest.invalid'],
    ['upper-case sha256', good({ pins: `sha256 = "${'A'.repeat(64)}"` }), 'manifest.invalid'],
    ['bad semver', good({ package_version: '"1.2"' }), 'manifest.invalid'],
    ['semver with v', good({ package_version: '"v1.2.3"' }), 'manifest.invalid'],
    ['semver pre-release with a leading zero', good({ package_version: '"1.0.0-01"' }), 'manifest.invalid'],
    ['reference with $(reboot)', good({ reference: '"example/app:$(reboot)"' }), 'manifest.invalid'],
    ['reference with ;', good({ reference: '"example/app:1;rm"' }), 'manifest.invalid'],
    ['reference without tag', good({ reference: '"example/app"' }), 'manifest.invalid'],
    ['reference upper case', good({ reference: '"Example/App:1"' }), 'manifest.invalid'],
    ['service with slash', good({ service: '"../etc"' }), 'manifest.invalid'],
    ['platform junk', good({ platform: '"linux amd64"' }), 'manifest.invalid'],
    ['created_at without zone', good({ created_at: '"2026-03-16T18:30:00"' }), 'manifest.invalid'],
    ['created_at as TOML datetime', good({ created_at: '2026-03-16T18:30:00Z' }), 'manifest.invalid'],
    ['missing target', good().replace(/\[target\][^[]*/, ''), 'manifest.invalid'],
    ['missing compatibility', good({ compat: '' }), 'manifest.invalid'],
    ['format_version as string', good({ format_version: '"1"' }), 'manifest.invalid'],
    ['format_version 2', good({ format_version: '2' }), 'manifest.unsupported_format'],
    ['format_version 2^60 (beyond 2^53)', good({ format_version: '1152921504606846976' }), 'manifest.invalid'],
    ['format_version 0', good({ format_version: '0' }), 'manifest.unsupported_format'],
    ['package_type stack with a service package\'s keys', good({ package_type: '"stack"' }), 'manifest.invalid'],
    ['package_type agent', good({ package_type: '"agent"' }), 'manifest.unsupported_type'],
  ];
  for (const [name, text, code] of cases) {
    it(`refuses ${name} with ${code}`, () => assert.equal(codeOf(text), code));
  }

  it('checks RFC 3339 calendar ranges', () => {
    for (const ok of ['2026-03-16T18:30:00Z', '2024-02-29T00:00:00.123+02:00', '2026-12-31t23:59:60z']) assert.equal(isRfc3339(ok), true, ok);
    for (const bad of ['2026-02-29T00:00:00Z', '2026-13-01T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01 00:00:00Z', '2026-01-01T00:00:00+25:00', 'yesterday']) {
      assert.equal(isRfc3339(bad), false, bad);
    }
  });

  it('renders a manifest that parses back to itself', () => {
    const m: Manifest = parseManifest(Buffer.from(good()));
    assert.deepEqual(parseManifest(Buffer.from(renderManifest(m))), m);
  });
});

const ID = (service: string): string => `sha256:${createHash('sha256').update(service).digest('hex')}`;
const stackService = (service: string, over: Record<string, string> = {}): string => {
  const f = { service: `"${service}"`, service_revision: `"${service}-v1"`, version: '"2.1.0"', reference: `"example/${service}:2.1.0"`, image_id: `"${ID(service)}"`, ...over };
  return `[[services]]\nservice = ${f.service}\nservice_revision = ${f.service_revision}\nversion = ${f.version}\nreference = ${f.reference}\nimage_id = ${f.image_id}\n`;
};
const goodStack = (over: Record<string, string> = {}, services = [stackService('db'), stackService('api'), stackService('worker')].join('\n')): string => {
  const f = {
    package_type: '"stack"', name: '"shop"', platform: '"linux/amd64"', pins: `sha256 = "${SHA}"\nsize = 123456789`, extra: '', ...over,
  };
  return `format_version = 1\npackage_type = ${f.package_type}\npackage_version = "2.1.0"\ncreated_at = "2026-03-16T18:30:00Z"\n${f.extra}
[stack]\nname = ${f.name}\nplatform = ${f.platform}\n
[image]\n${f.pins}\n
${services}
[compatibility]\nmin_updater_version = "0.1.0"\n`;
};

describe('manifest of a stack package', () => {
  it('parses the documented example, services in their order', () => {
    const m = parseManifest(Buffer.from(goodStack()));
    assert.deepEqual(m, {
      format_version: 1, package_type: 'stack', package_version: '2.1.0', created_at: '2026-03-16T18:30:00Z',
      stack: { name: 'shop', platform: 'linux/amd64' },
      image: { sha256: SHA, size: 123456789 },
      services: ['db', 'api', 'worker'].map((s) => ({ service: s, service_revision: `${s}-v1`, version: '2.1.0', reference: `example/${s}:2.1.0`, image_id: ID(s) })),
      compatibility: { min_updater_version: '0.1.0' },
    });
  });
  it('accepts a stack without image pins (unsigned)', () => {
    const m = parseManifest(Buffer.from(goodStack({ pins: '' })));
    assert.deepEqual(m.image, {});
  });
  it('renders a stack manifest that parses back to itself', () => {
    const m = parseManifest(Buffer.from(goodStack()));
    assert.deepEqual(parseManifest(Buffer.from(renderManifest(m))), m);
  });
  it('is refused where a service package is expected', () => {
    assert.throws(() => parseServiceManifest(Buffer.from(goodStack())), (e) => e instanceof CaissonError && e.code === 'manifest.unsupported_type');
    assert.equal(parseServiceManifest(Buffer.from(good())).package_type, 'service');
  });
  const seventeen = Array.from({ length: 17 }, (_, i) => stackService(`s${i}`)).join('\n');
  const cases: Array<[string, string, ErrorCode]> = [
    ['no services', goodStack({}, ''), 'manifest.invalid'],
    ['17 services', goodStack({}, seventeen), 'manifest.invalid'],
    ['a [target] table', goodStack({ extra: '[target]\nservice = "api"\n' }), 'manifest.invalid'],
    ['image.reference', goodStack({ pins: 'reference = "example/api:2.1.0"' }), 'manifest.invalid'],
    ['an unknown key in a service', goodStack({}, stackService('api') + 'command = "sh"\n'), 'manifest.invalid'],
    ['a service without image_id', goodStack({}, stackService('api').replace(/image_id.*\n/, '')), 'manifest.invalid'],
    ['an image_id without sha256:', goodStack({}, stackService('api', { image_id: `"${'a'.repeat(64)}"` })), 'manifest.invalid'],
    ['an upper-case image_id', goodStack({}, stackService('api', { image_id: `"sha256:${'A'.repeat(64)}"` })), 'manifest.invalid'],
    ['a service name with ../', goodStack({}, stackService('../api')), 'manifest.invalid'],
    ['a reference with $(reboot)', goodStack({}, stackService('api', { reference: '"example/api:$(reboot)"' })), 'manifest.invalid'],
    ['a version that is not semver', goodStack({}, stackService('api', { version: '"2.1"' })), 'manifest.invalid'],
    ['a stack name with a slash', goodStack({ name: '"a/b"' }), 'manifest.invalid'],
    ['a platform with a space', goodStack({ platform: '"linux amd64"' }), 'manifest.invalid'],
    ['services as a table', goodStack({}, '[services]\nservice = "api"\n'), 'manifest.invalid'],
  ];
  for (const [name, text, code] of cases) {
    it(`refuses ${name} with ${code}`, () => assert.equal(codeOf(text), code));
  }
});
