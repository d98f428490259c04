// The freshness and targeting keys of a manifest, and the pure checks over them
// (package/freshness.ts, package/device-target.ts), with a fake clock.
import assert from 'node:assert/strict';
import { assertFields } from '../../support/assert.js';
import { CaissonError, type ErrorCode } from '../../../agent/errors.js';
import { MAX_TARGET_DEVICE_IDS, parseManifest, renderManifest, rfc3339Millis } from '../../../agent/package/manifest.js';
import { checkExpiry, checkIssueOrder, requireIssuedAt } from '../../../agent/package/freshness.js';
import { checkDeviceTarget, UNKNOWN_DEVICE, type DeviceContext } from '../../../agent/package/device-target.js';
import { buildPackage, parseDuration } from '../../../agent/package/builder.js';
import type { Manifest } from '../../../agent/package/types.js';

const manifest = (top = '', target = ''): string => `format_version = 1
package_type = "service"
package_version = "1.2.3"
created_at = "2026-03-16T18:30:00Z"
${top}
[target]
service = "frontend"
service_revision = "frontend-v1"
platform = "linux/amd64"
${target}
[image]
reference = "example/frontend:1.2.3"

[compatibility]
min_updater_version = "0.1.0"
`;

function codeOf(fn: () => unknown): ErrorCode | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof CaissonError);
    return (err as CaissonError).code;
  }
}
const parse = (top = '', target = '') => parseManifest(Buffer.from(manifest(top, target)));
const ID = 'k3xq-7h2m-pa4d-6wzt';

describe('manifest freshness and targeting keys', () => {
  it('parses issued_at, expires_at, device_class and device_ids, and renders them back', () => {
    const m = parse('issued_at = "2026-03-16T18:30:00Z"\nexpires_at = "2026-04-15T18:30:00+02:00"', `device_class = "kiosk-v2"\ndevice_ids = ["${ID}"]`);
    assertFields(m, { issued_at: '2026-03-16T18:30:00Z', expires_at: '2026-04-15T18:30:00+02:00' });
    assertFields(m.target, { device_class: 'kiosk-v2', device_ids: [ID] });
    assert.deepEqual(parseManifest(Buffer.from(renderManifest(m))), m);
  });

  it('leaves them out when absent (no keys appear from nowhere)', () => {
    const m = parse();
    for (const key of ['issued_at', 'expires_at']) assert.ok(!Object.keys(m).includes(key), key);
    assert.ok(m.target);
    for (const key of ['device_class', 'device_ids']) assert.ok(!Object.keys(m.target).includes(key), key);
  });

  for (const [what, top, target] of [
    ['issued_at not RFC 3339', 'issued_at = "2026-03-16 18:30"', ''],
    ['issued_at as a bare TOML datetime', 'issued_at = 2026-03-16T18:30:00Z', ''],
    ['expires_at on a date that does not exist', 'expires_at = "2026-02-30T00:00:00Z"', ''],
    ['expires_at before issued_at', 'issued_at = "2026-03-16T18:30:00Z"\nexpires_at = "2026-03-16T18:29:59Z"', ''],
    ['expires_at equal to issued_at (in another zone)', 'issued_at = "2026-03-16T18:30:00Z"\nexpires_at = "2026-03-16T19:30:00+01:00"', ''],
    ['a device class with a slash', '', 'device_class = "kiosk/v2"'],
    ['a device ID that is not one', '', 'device_ids = ["k3xq-7h2m-pa4d-9wzt"]'],
    ['an empty device ID list', '', 'device_ids = []'],
    ['a device ID list of numbers', '', 'device_ids = [1, 2]'],
    ['an unknown target key', '', 'device = "x"'],
  ] as const) {
    it(`refuses ${what} (manifest.invalid)`, () => {
      assert.equal(codeOf(() => parse(top, target)), 'manifest.invalid');
    });
  }

  it(`refuses more than ${MAX_TARGET_DEVICE_IDS} device IDs`, () => {
    const ids = Array.from({ length: MAX_TARGET_DEVICE_IDS + 1 }, (_, i) => `aaaa-aaaa-aaaa-${(i % 32768).toString(32).padStart(4, 'a').replace(/[0-9]/g, (d) => 'abcdefghij'[Number(d)]!)}`);
    assert.equal(codeOf(() => parse('', `device_ids = ${JSON.stringify(ids)}`)), 'manifest.invalid');
    assert.equal(codeOf(() => parse('', `device_ids = ${JSON.stringify(ids.slice(1))}`)), 'ok');
  });

  it('orders RFC 3339 times across zones, fractions and a leap second', () => {
    assert.equal(rfc3339Millis('2026-03-16T19:30:00+01:00'), rfc3339Millis('2026-03-16T18:30:00Z'));
    assert.equal(rfc3339Millis('2026-03-16t18:30:00.250z'), Date.UTC(2026, 2, 16, 18, 30, 0, 250));
    assert.equal(rfc3339Millis('2016-12-31T23:59:60Z'), Date.UTC(2017, 0, 1));
  });
});

describe('freshness checks (fake clock)', () => {
  const m = (o: Partial<Manifest>) => o as Manifest;

  it('expiry: fresh before expires_at, expired at and after it, by the clock', () => {
    const pkg = m({ issued_at: '2026-01-01T00:00:00Z', expires_at: '2026-02-01T00:00:00Z' });
    assert.equal(codeOf(() => checkExpiry(pkg, { clock: new Date('2026-01-31T23:59:59.999Z') })), 'ok');
    assert.equal(codeOf(() => checkExpiry(pkg, { clock: new Date('2026-02-01T00:00:00Z') })), 'policy.expired');
    assert.equal(codeOf(() => checkExpiry(m({}), { clock: new Date('2099-01-01T00:00:00Z') })), 'ok', 'no expires_at: never');
  });

  it('expiry: the later of the clock and the floor counts, and the message says both', () => {
    const pkg = m({ expires_at: '2026-02-01T00:00:00Z' });
    const time = { clock: new Date('1970-01-01T00:01:00Z'), floor: '2026-03-01T00:00:00+01:00' };
    assert.throws(() => checkExpiry(pkg, time), (e) => e instanceof CaissonError && /expired at 2026-02-01T00:00:00Z.*issued 2026-03-01T00:00:00\+01:00.*clock says 1970-01-01T00:01:00.000Z/.test(e.message));
    assert.equal(codeOf(() => checkExpiry(pkg, { clock: new Date('1970-01-01T00:01:00Z'), floor: '2026-01-01T00:00:00Z' })), 'ok');
    assert.throws(() => checkExpiry(pkg, { clock: new Date('2026-05-01T00:00:00Z'), floor: '2026-01-01T00:00:00Z' }), { message: /clock says 2026-05-01/ });
  });

  it('issue order: a signed package issued before the newest accepted is refused unless the operator allows it', () => {
    const older = m({ issued_at: '2026-01-01T00:00:00Z' });
    const newest = '2026-01-01T00:00:01Z';
    assert.throws(() => checkIssueOrder(older, 'web', newest, { signed: true, allowDowngrade: false }), (e) => e instanceof CaissonError && /2026-01-01T00:00:00Z.*web.*2026-01-01T00:00:01Z/.test(e.message));
    assert.equal(codeOf(() => checkIssueOrder(older, 'web', newest, { signed: true, allowDowngrade: true })), 'ok');
    assert.equal(codeOf(() => checkIssueOrder(older, 'web', newest, { signed: false, allowDowngrade: false })), 'ok', 'unsigned: not compared');
    assert.equal(codeOf(() => checkIssueOrder(older, 'web', undefined, { signed: true, allowDowngrade: false })), 'ok', 'nothing accepted yet');
    assert.equal(codeOf(() => checkIssueOrder(older, 'web', '2026-01-01T01:00:00+01:00', { signed: true, allowDowngrade: false })), 'ok', 'same instant');
  });

  it('a signed manifest must carry issued_at; an unsigned one need not', () => {
    assert.equal(codeOf(() => requireIssuedAt(m({}), true)), 'signature.no_issued_at');
    assert.equal(codeOf(() => requireIssuedAt(m({}), false)), 'ok');
    assert.equal(codeOf(() => requireIssuedAt(m({ issued_at: '2026-01-01T00:00:00Z' }), true)), 'ok');
  });
});

describe('device targeting check', () => {
  const kiosk: DeviceContext = { id: ID, deviceClass: 'kiosk-v2' };
  const target = (t: { device_class?: string; device_ids?: string[] }) => ({ target: t });

  it('no target: any device, without asking who it is', () => {
    assert.equal(codeOf(() => checkDeviceTarget(target({}), () => assert.fail('asked'))), 'ok');
  });

  it('matches the class, the ID list, or both', () => {
    assert.equal(codeOf(() => checkDeviceTarget(target({ device_class: 'kiosk-v2' }), () => kiosk)), 'ok');
    assert.equal(codeOf(() => checkDeviceTarget(target({ device_ids: ['aaaa-aaaa-aaaa-aaaa', ID] }), () => kiosk)), 'ok');
    assert.equal(codeOf(() => checkDeviceTarget(target({ device_class: 'kiosk-v2', device_ids: [ID] }), () => kiosk)), 'ok');
  });

  it('refuses another class or other IDs, naming the device ID and class', () => {
    for (const t of [{ device_class: 'kiosk-v3' }, { device_ids: ['aaaa-aaaa-aaaa-aaaa'] }, { device_class: 'Kiosk-v2', device_ids: [ID] }]) {
      assert.throws(
        () => checkDeviceTarget(target(t), () => kiosk),
        (e) => e instanceof CaissonError && new RegExp(`ID ${ID}, class "kiosk-v2"`).test(e.message) && e.code === 'manifest.not_for_this_device',
      );
    }
  });

  it('an unknown device matches no class and no ID', () => {
    assert.equal(codeOf(() => checkDeviceTarget(target({ device_ids: [ID] }), () => UNKNOWN_DEVICE)), 'manifest.not_for_this_device');
    assert.equal(codeOf(() => checkDeviceTarget(target({ device_class: 'default' }), () => UNKNOWN_DEVICE)), 'manifest.not_for_this_device');
  });
});

describe('package build: freshness and targeting options', () => {
  it('reads durations: s, m, h, d, w, a whole number, at most 100 years', () => {
    assert.equal(parseDuration('30d'), 30 * 86_400_000);
    assert.equal(parseDuration('90m'), 90 * 60_000);
    assert.equal(parseDuration('2w'), 14 * 86_400_000);
    for (const bad of ['', '30', 'd', '1.5d', '-1d', '0d', '30 d', '999999w', '30D']) assert.equal(codeOf(() => parseDuration(bad)), 'usage.invalid', bad);
  });

  const base = { imageRef: 'example/app:1.0.0', service: 'app', serviceRevision: 'app-v1', platform: 'linux/amd64', version: '1.0.0', out: '/nonexistent/x.edgepkg', dockerSocket: '/nonexistent.sock' };
  for (const [what, extra] of [
    ['both --expires-at and --expires-in', { expiresAt: '2099-01-01T00:00:00Z', expiresIn: '30d' }],
    ['an --expires-at that is not RFC 3339', { expiresAt: 'tomorrow' }],
    ['an --expires-at before the build time', { createdAt: '2026-03-16T18:30:00Z', expiresAt: '2026-03-16T18:29:00Z' }],
    ['a bad --device-class', { deviceClass: 'kiosk v2' }],
    ['a bad --device-id', { deviceIds: ['not-an-id'] }],
  ] as const) {
    it(`refuses ${what} before it touches the engine`, async () => {
      const err = await buildPackage({ ...base, ...extra }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof CaissonError);
      assert.equal(err.code, 'usage.invalid');
    });
  }
});
