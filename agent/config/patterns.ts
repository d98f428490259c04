// Strict patterns for every name that reaches Docker, Compose or a file name.
// Manifest strings are untrusted: anything not matching is rejected, never escaped.
import type * as v from 'valibot';

export const NAME_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
export const COMPOSE_PROJECT_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const COMPOSE_SERVICE_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
export const PLATFORM_PATTERN = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/;
// registry[:port]/path:tag, lower-case path components, tag as Docker allows; no digests.
export const IMAGE_REFERENCE_PATTERN =
  /^(?:[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]{1,5})?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
// SemVer 2.0 (semver.org's own expression, numbers bounded): a numeric pre-release identifier
// has no leading zero (§9), so `1.0.0-01` is refused. package/semver.ts also asks the `semver` package.
export const SEMVER_PATTERN =
  /^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;
export const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;
/** agent.toml's device_class, and a manifest's target.device_class. */
export const DEVICE_CLASS_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** A device ID as device/identity.ts makes it: four groups of four base32 letters. */
export const DEVICE_ID_PATTERN = /^[a-z2-7]{4}(?:-[a-z2-7]{4}){3}$/;

/** One readable line from valibot issues: "path.to.key: message". */
export function firstIssue(issues: readonly v.BaseIssue<unknown>[]): string {
  const issue = issues[0];
  if (!issue) return 'invalid';
  const path = issue.path?.map((p) => String((p as { key?: unknown }).key)).join('.') ?? '';
  return path ? `${path}: ${issue.message}` : issue.message;
}
