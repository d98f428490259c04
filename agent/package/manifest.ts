// manifest.toml: parsed strictly. Every string that later reaches Docker, Compose, a file
// name or a report must match a fixed pattern; unknown keys are errors. Two package types
// share the common keys: "service" (one service: [target], [image]) and "stack" (several
// services at once: [stack], [image], [[services]]).
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
import { ENCRYPTION_SCHEME, MAX_RECIPIENTS } from './encryption.js';
import { MAX_STACK_SERVICES, type DeviceTargetKeys, type FreshnessKeys, type Manifest, type ManifestCommon, type PackageType, type ServiceManifest, type StackManifest } from './types.js';

export const MAX_MANIFEST_BYTES = 64 * 1024;

/** An image's config digest as the manifest spells it. */
export const IMAGE_ID_PATTERN = /^sha256:[0-9a-f]{64}$/;

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

/** A recipient as manifests name it: deviceIdFor() of its public key. */
const RECIPIENT_ID = /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/;

const name = (what: string) => v.pipe(v.string(), v.regex(NAME_PATTERN, `${what} must match [a-z0-9][a-z0-9_.-]{0,62}`));
const semver = (what: string) => v.pipe(v.string(), v.check(isSemver, `${what} must be a semantic version like 1.2.3`));
const platform = (what: string) => v.pipe(v.string(), v.regex(PLATFORM_PATTERN, `${what} must look like linux/amd64`));
const reference = (what: string) =>
  v.pipe(
    v.string(),
    v.maxLength(255, `${what} is too long`),
    v.regex(IMAGE_REFERENCE_PATTERN, `${what} must be a plain image reference like example/app:1.2.3`),
  );
const sha256Hex = v.optional(v.pipe(v.string(), v.regex(SHA256_HEX_PATTERN, 'image.sha256 must be 64 lower-case hex digits')));
const imageSize = v.optional(v.pipe(v.number(), v.integer('image.size must be an integer'), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER)));

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
      v.array(v.pipe(v.string(), v.regex(DEVICE_ID_PATTERN, 'target.device_ids entries must be device IDs like k3xq-7h2m-pa4d-6wzt'))),
      v.minLength(1, 'target.device_ids must name at least one device (leave it out for any device)'),
      v.maxLength(MAX_TARGET_DEVICE_IDS, `target.device_ids may name at most ${MAX_TARGET_DEVICE_IDS} devices`),
    ),
  ),
};

/**
 * The keys of every package type. A key every package gains is added here (and to
 * ManifestCommon and commonOf), once.
 */
const COMMON_KEYS = {
  format_version: v.literal(1),
  package_version: semver('package_version'),
  created_at: v.pipe(v.string(), v.check(isRfc3339, 'created_at must be an RFC 3339 date-time like 2026-03-16T18:30:00Z')),
  ...FRESHNESS_ENTRIES,
  compatibility: v.strictObject({
    min_updater_version: semver('compatibility.min_updater_version'),
  }),
  // the image entry is encrypted (encryption.ts); [image] still pins the plaintext archive
  encryption: v.optional(
    v.strictObject({
      scheme: v.literal(ENCRYPTION_SCHEME),
      recipients: v.pipe(
        v.array(v.pipe(v.string(), v.regex(RECIPIENT_ID, 'encryption.recipients entries must be device IDs like k3xq-7h2m-pa4d-6wzt'))),
        v.minLength(1, 'encryption.recipients must list at least one recipient'),
        v.maxLength(MAX_RECIPIENTS, `encryption.recipients may list at most ${MAX_RECIPIENTS} recipients`),
      ),
      sha256: v.pipe(v.string(), v.regex(SHA256_HEX_PATTERN, 'encryption.sha256 must be 64 lower-case hex digits')),
      size: v.pipe(v.number(), v.integer('encryption.size must be an integer'), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER)),
    }),
  ),
};

const ServiceManifestSchema = v.strictObject({
  ...COMMON_KEYS,
  package_type: v.literal('service'),
  target: v.strictObject({
    service: name('target.service'),
    service_revision: name('target.service_revision'),
    platform: platform('target.platform'),
    ...DEVICE_TARGET_ENTRIES,
  }),
  image: v.strictObject({
    reference: reference('image.reference'),
    sha256: sha256Hex,
    size: imageSize,
  }),
});

const StackServiceSchema = v.strictObject({
  service: name('services.service'),
  service_revision: name('services.service_revision'),
  version: semver('services.version'),
  reference: reference('services.reference'),
  image_id: v.pipe(v.string(), v.regex(IMAGE_ID_PATTERN, 'services.image_id must be sha256: and 64 lower-case hex digits')),
});

const StackManifestSchema = v.strictObject({
  ...COMMON_KEYS,
  package_type: v.literal('stack'),
  stack: v.strictObject({
    name: name('stack.name'),
    platform: platform('stack.platform'),
  }),
  // a stack's [target] holds only the device targeting keys
  target: v.optional(v.strictObject({ ...DEVICE_TARGET_ENTRIES })),
  image: v.strictObject({ sha256: sha256Hex, size: imageSize }),
  services: v.pipe(
    v.array(StackServiceSchema),
    v.minLength(1, 'services must list at least one service'),
    v.maxLength(MAX_STACK_SERVICES, `services may list at most ${MAX_STACK_SERVICES} services`),
  ),
});

const PACKAGE_TYPES: readonly PackageType[] = ['service', 'stack'];

/** Parse and validate the exact bytes of manifest.toml. */
export function parseManifest(bytes: Buffer): Manifest {
  const top = readToml(bytes);
  const fv = top['format_version'];
  if (typeof fv === 'number' && fv !== 1) {
    throw new CaissonError('manifest.unsupported_format', `manifest.toml has format_version ${String(fv)}; this updater reads format_version 1`);
  }
  const pt = top['package_type'];
  if (typeof pt === 'string' && !(PACKAGE_TYPES as readonly string[]).includes(pt)) {
    throw new CaissonError('manifest.unsupported_type', `manifest.toml has package_type "${printable(pt)}"; this device accepts "service" and "stack"`);
  }
  const scheme = (top['encryption'] as Record<string, unknown> | undefined)?.['scheme'];
  if (typeof scheme === 'string' && scheme !== ENCRYPTION_SCHEME) {
    throw new CaissonError('crypto.unsupported_scheme', `manifest.toml declares encryption scheme "${printable(scheme)}"; this device reads "${ENCRYPTION_SCHEME}" only`);
  }
  return pt === 'stack' ? parseStack(top) : parseService(top);
}

/** The manifest of a service package; a stack's manifest is manifest.unsupported_type here. */
export function parseServiceManifest(bytes: Buffer): ServiceManifest {
  const manifest = parseManifest(bytes);
  if (manifest.package_type !== 'service') {
    throw new CaissonError('manifest.unsupported_type', `manifest.toml has package_type "${manifest.package_type}"; a service package was expected here`);
  }
  return manifest;
}

function readToml(bytes: Buffer): Record<string, unknown> {
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
  try {
    // Integers beyond 2^53 come back as bigint and are then refused by the schema (never rounded).
    return parseToml(text, { integersAsBigInt: 'asNeeded' }) as Record<string, unknown>;
  } catch (err) {
    throw new CaissonError('manifest.invalid_toml', `manifest.toml: ${describe(err)}`);
  }
}

function checked<S extends v.GenericSchema>(schema: S, raw: unknown): v.InferOutput<S> {
  const result = v.safeParse(schema, raw);
  if (!result.success) throw new CaissonError('manifest.invalid', `manifest.toml: ${firstIssue(result.issues)}`);
  return result.output;
}

/** The shared keys, copied out of a parsed manifest. */
function commonOf(m: ManifestCommon): ManifestCommon {
  const common: ManifestCommon = {
    format_version: 1,
    package_version: m.package_version,
    created_at: m.created_at,
    ...freshnessOf(m),
    compatibility: { ...m.compatibility },
  };
  if (m.encryption) common.encryption = { ...m.encryption, recipients: [...m.encryption.recipients] };
  return common;
}

/** Only the pins that are there: an absent key stays absent (not `undefined`). */
function pinsOf(image: { sha256?: string | undefined; size?: number | undefined }): { sha256?: string; size?: number } {
  const out: { sha256?: string; size?: number } = {};
  if (image.sha256 !== undefined) out.sha256 = image.sha256;
  if (image.size !== undefined) out.size = image.size;
  return out;
}

function parseService(raw: unknown): ServiceManifest {
  const m = checked(ServiceManifestSchema, raw);
  return {
    ...commonOf(m),
    package_type: 'service',
    target: { service: m.target.service, service_revision: m.target.service_revision, platform: m.target.platform, ...deviceTargetOf(m.target) },
    image: { reference: m.image.reference, ...pinsOf(m.image) },
  };
}

function parseStack(raw: unknown): StackManifest {
  const m = checked(StackManifestSchema, raw);
  const stack: StackManifest = {
    ...commonOf(m),
    package_type: 'stack',
    stack: { ...m.stack },
    image: pinsOf(m.image),
    services: m.services.map((s) => ({ ...s })),
  };
  if (m.target) stack.target = deviceTargetOf(m.target);
  return stack;
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
  const common = {
    format_version: m.format_version,
    package_type: m.package_type,
    package_version: m.package_version,
    created_at: m.created_at,
    ...freshnessOf(m),
  };
  const encryption = m.encryption ? { encryption: { ...m.encryption } } : {};
  const doc =
    m.package_type === 'service'
      ? { ...common, target: { ...m.target }, image: { ...m.image }, compatibility: { ...m.compatibility }, ...encryption }
      : { ...common, stack: { ...m.stack }, ...(m.target ? { target: { ...m.target } } : {}), image: { ...m.image }, services: m.services.map((s) => ({ ...s })), compatibility: { ...m.compatibility }, ...encryption };
  const text = stringifyToml(doc).replace(/\n*$/, '\n');
  parseManifest(Buffer.from(text, 'utf8'));
  return text;
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
}
