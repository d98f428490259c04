// manifest.toml: parsed strictly. Every string that later reaches Docker, Compose, a file
// name or a report must match a fixed pattern; unknown keys are errors.
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import * as v from 'valibot';
import { CaissonError, describe } from '../errors.js';
import {
  IMAGE_REFERENCE_PATTERN,
  NAME_PATTERN,
  PLATFORM_PATTERN,
  SHA256_HEX_PATTERN,
  firstIssue,
} from '../config/patterns.js';
import { isSemver } from './semver.js';
import { ENCRYPTION_SCHEME, MAX_RECIPIENTS } from './encryption.js';
import type { Manifest } from './types.js';

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

/** A recipient as manifests name it: deviceIdFor() of its public key. */
const RECIPIENT_ID = /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/;

const name = (what: string) => v.pipe(v.string(), v.regex(NAME_PATTERN, `${what} must match [a-z0-9][a-z0-9_.-]{0,62}`));
const semver = (what: string) => v.pipe(v.string(), v.check(isSemver, `${what} must be a semantic version like 1.2.3`));

const ManifestSchema = v.strictObject({
  format_version: v.literal(1),
  package_type: v.literal('service'),
  package_version: semver('package_version'),
  created_at: v.pipe(v.string(), v.check(isRfc3339, 'created_at must be an RFC 3339 date-time like 2026-03-16T18:30:00Z')),
  target: v.strictObject({
    service: name('target.service'),
    service_revision: name('target.service_revision'),
    platform: v.pipe(v.string(), v.regex(PLATFORM_PATTERN, 'target.platform must look like linux/amd64')),
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
  // the image entry is encrypted (encryption.ts); [image] still pins the plaintext archive
  encryption: v.optional(
    v.strictObject({
      scheme: v.literal(ENCRYPTION_SCHEME),
      recipients: v.pipe(
        v.array(v.pipe(v.string(), v.regex(RECIPIENT_ID, 'encryption.recipients entries must be device IDs like k3xq-7h2m-pa4d-9wzt'))),
        v.minLength(1, 'encryption.recipients must list at least one recipient'),
        v.maxLength(MAX_RECIPIENTS, `encryption.recipients may list at most ${MAX_RECIPIENTS} recipients`),
      ),
      sha256: v.pipe(v.string(), v.regex(SHA256_HEX_PATTERN, 'encryption.sha256 must be 64 lower-case hex digits')),
      size: v.pipe(v.number(), v.integer('encryption.size must be an integer'), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER)),
    }),
  ),
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
  const scheme = (top['encryption'] as Record<string, unknown> | undefined)?.['scheme'];
  if (typeof scheme === 'string' && scheme !== ENCRYPTION_SCHEME) {
    throw new CaissonError('crypto.unsupported_scheme', `manifest.toml declares encryption scheme "${printable(scheme)}"; this device reads "${ENCRYPTION_SCHEME}" only`);
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
    target: { ...m.target },
    image: { reference: m.image.reference },
    compatibility: { ...m.compatibility },
  };
  if (m.image.sha256 !== undefined) manifest.image.sha256 = m.image.sha256;
  if (m.image.size !== undefined) manifest.image.size = m.image.size;
  if (m.encryption) manifest.encryption = { ...m.encryption, recipients: [...m.encryption.recipients] };
  return manifest;
}

/** The TOML text the builder writes (and tests use). Validated before it is returned. */
export function renderManifest(m: Manifest): string {
  const doc = {
    format_version: m.format_version,
    package_type: m.package_type,
    package_version: m.package_version,
    created_at: m.created_at,
    target: { ...m.target },
    image: { ...m.image },
    compatibility: { ...m.compatibility },
    ...(m.encryption ? { encryption: { ...m.encryption } } : {}),
  };
  const text = stringifyToml(doc).replace(/\n*$/, '\n');
  parseManifest(Buffer.from(text, 'utf8'));
  return text;
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
}
