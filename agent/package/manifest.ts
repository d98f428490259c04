// manifest.toml: parsed strictly. Every string that later reaches Docker, Compose, a file
// name or a report must match a fixed pattern; unknown keys are errors.
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import * as v from 'valibot';
import { CaissonError, describe } from '../errors.js';
import {
  DEVICE_CLASS_PATTERN,
  DEVICE_ID_PATTERN,
  IMAGE_REFERENCE_PATTERN,
  NAME_PATTERN,
  PLATFORM_PATTERN,
  SHA256_HEX_PATTERN,
  firstIssue,
} from '../config/patterns.js';
import { isSemver } from './semver.js';
import type { DeviceTargetKeys, FreshnessKeys, Manifest } from './types.js';

export const MAX_MANIFEST_BYTES = 64 * 1024;

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-](\d{2}):(\d{2}))$/;

/** RFC 3339 date-time with a time zone, with real calendar ranges. */
export function isRfc3339(text: string): boolean {
  const m = RFC3339.exec(text);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] as number;
  if (day > days || hour > 23 || minute > 59 || second > 60) return false;
  if (m[9] !== undefined && (Number(m[9]) > 23 || Number(m[10]) > 59)) return false;
  return true;
}

const name = (what: string) => v.pipe(v.string(), v.regex(NAME_PATTERN, `${what} must match [a-z0-9][a-z0-9_.-]{0,62}`));
const semver = (what: string) => v.pipe(v.string(), v.check(isSemver, `${what} must be a semantic version like 1.2.3`));

const rfc3339 = (what: string) => v.pipe(v.string(), v.check(isRfc3339, `${what} must be an RFC 3339 date-time like 2026-03-16T18:30:00Z`));

/** Most device IDs one package may name (a fleet larger than this gets a device_class). */
export const MAX_TARGET_DEVICE_IDS = 1000;

/** Freshness keys, shared by every package type (package/freshness.ts checks them). */
export const FRESHNESS_ENTRIES = {
  issued_at: v.optional(rfc3339('issued_at')),
  expires_at: v.optional(rfc3339('expires_at')),
};

/** Device targeting keys of [target], shared by every package type (package/device-target.ts). */
export const DEVICE_TARGET_ENTRIES = {
  device_class: v.optional(v.pipe(v.string(), v.regex(DEVICE_CLASS_PATTERN, 'target.device_class must be [A-Za-z0-9][A-Za-z0-9_.-]*, at most 64 characters'))),
  device_ids: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.regex(DEVICE_ID_PATTERN, 'target.device_ids entries must be device IDs like k3xq-7h2m-pa4d-9wzt'))),
      v.minLength(1, 'target.device_ids must name at least one device (leave it out for any device)'),
      v.maxLength(MAX_TARGET_DEVICE_IDS, `target.device_ids may name at most ${MAX_TARGET_DEVICE_IDS} devices`),
    ),
  ),
};

const ManifestSchema = v.strictObject({
  format_version: v.literal(1),
  package_type: v.literal('service'),
  package_version: semver('package_version'),
  created_at: v.pipe(v.string(), v.check(isRfc3339, 'created_at must be an RFC 3339 date-time like 2026-03-16T18:30:00Z')),
  ...FRESHNESS_ENTRIES,
  target: v.strictObject({
    service: name('target.service'),
    service_revision: name('target.service_revision'),
    platform: v.pipe(v.string(), v.regex(PLATFORM_PATTERN, 'target.platform must look like linux/amd64')),
    ...DEVICE_TARGET_ENTRIES,
  }),
  image: v.strictObject({
    reference: v.pipe(
      v.string(),
      v.maxLength(255, 'image.reference is too long'),
      v.regex(IMAGE_REFERENCE_PATTERN, 'image.reference must be a plain image reference like example/app:1.2.3'),
    ),
    sha256: v.optional(v.pipe(v.string(), v.regex(SHA256_HEX_PATTERN, 'image.sha256 must be 64 lower-case hex digits'))),
    size: v.optional(v.pipe(v.number(), v.integer('image.size must be an integer'), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER))),
  }),
  compatibility: v.strictObject({
    min_updater_version: semver('compatibility.min_updater_version'),
  }),
});

/** Parse and validate the exact bytes of manifest.toml. */
export function parseManifest(bytes: Buffer): Manifest {
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new CaissonError('manifest.too_large', `manifest.toml is ${bytes.length} bytes (limit ${MAX_MANIFEST_BYTES})`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new CaissonError('manifest.not_utf8', 'manifest.toml is not valid UTF-8');
  }
  if (text.includes('\0')) throw new CaissonError('manifest.invalid_toml', 'manifest.toml contains a NUL character');
  let raw: unknown;
  try {
    // Integers beyond 2^53 come back as bigint and are then refused by the schema (never rounded).
    raw = parseToml(text, { integersAsBigInt: 'asNeeded' });
  } catch (err) {
    throw new CaissonError('manifest.invalid_toml', `manifest.toml: ${describe(err)}`);
  }
  const top = raw as Record<string, unknown>;
  const fv = top['format_version'];
  if (typeof fv === 'number' && fv !== 1) {
    throw new CaissonError('manifest.unsupported_format', `manifest.toml has format_version ${String(fv)}; this updater reads format_version 1`);
  }
  const pt = top['package_type'];
  if (typeof pt === 'string' && pt !== 'service') {
    throw new CaissonError('manifest.unsupported_type', `manifest.toml has package_type "${printable(pt)}"; this device accepts "service" only`);
  }
  const result = v.safeParse(ManifestSchema, raw);
  if (!result.success) {
    throw new CaissonError('manifest.invalid', `manifest.toml: ${firstIssue(result.issues)}`);
  }
  const m = result.output;
  const manifest: Manifest = {
    format_version: 1,
    package_type: 'service',
    package_version: m.package_version,
    created_at: m.created_at,
    ...freshnessOf(m),
    target: { service: m.target.service, service_revision: m.target.service_revision, platform: m.target.platform, ...deviceTargetOf(m.target) },
    image: { reference: m.image.reference },
    compatibility: { ...m.compatibility },
  };
  if (m.image.sha256 !== undefined) manifest.image.sha256 = m.image.sha256;
  if (m.image.size !== undefined) manifest.image.size = m.image.size;
  return manifest;
}

/** The freshness keys that are present, checked against each other. */
export function freshnessOf(m: FreshnessKeys): FreshnessKeys {
  if (m.issued_at !== undefined && m.expires_at !== undefined && rfc3339Millis(m.expires_at) <= rfc3339Millis(m.issued_at)) {
    throw new CaissonError('manifest.invalid', `manifest.toml: expires_at (${m.expires_at}) must be later than issued_at (${m.issued_at})`);
  }
  const out: FreshnessKeys = {};
  if (m.issued_at !== undefined) out.issued_at = m.issued_at;
  if (m.expires_at !== undefined) out.expires_at = m.expires_at;
  return out;
}

/** The device targeting keys that are present. */
export function deviceTargetOf(t: DeviceTargetKeys): DeviceTargetKeys {
  const out: DeviceTargetKeys = {};
  if (t.device_class !== undefined) out.device_class = t.device_class;
  if (t.device_ids !== undefined) out.device_ids = [...t.device_ids];
  return out;
}

/**
 * Milliseconds since the epoch of an RFC 3339 date-time (isRfc3339 first). A leap second
 * (:60) counts as the second after :59; digits past milliseconds are dropped.
 */
export function rfc3339Millis(text: string): number {
  const leap = /:60(?=[.Zz+-])/.test(text);
  const ms = Date.parse(leap ? text.replace(/:60(?=[.Zz+-])/, ':59') : text);
  return leap ? ms + 1000 : ms;
}

/** The TOML text the builder writes (and tests use). Validated before it is returned. */
export function renderManifest(m: Manifest): string {
  const doc = {
    format_version: m.format_version,
    package_type: m.package_type,
    package_version: m.package_version,
    created_at: m.created_at,
    ...freshnessOf(m),
    target: { ...m.target },
    image: { ...m.image },
    compatibility: { ...m.compatibility },
  };
  const text = stringifyToml(doc).replace(/\n*$/, '\n');
  parseManifest(Buffer.from(text, 'utf8'));
  return text;
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
}
