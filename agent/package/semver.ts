// Semantic Versioning 2.0.0 (https://semver.org) through the `semver` package, the parser npm
// itself uses, instead of a comparison of our own. Its strict parser rejects what SemVer 2.0
// rejects (e.g. leading zeros in a numeric pre-release identifier: `1.0.0-01`, §9) but also
// tolerates a `v`/`=` prefix and surrounding spaces; SEMVER_PATTERN refuses those first, so a
// version is accepted only in its one canonical spelling.
import semver from 'semver';
import { SEMVER_PATTERN } from '../config/patterns.js';

export interface SemVer {
  major: number;
  minor: number;
  patch: number;
  prerelease: string[];
  build: string[];
}

export function isSemver(text: string): boolean {
  return SEMVER_PATTERN.test(text) && semver.valid(text) !== null;
}

export function parseSemver(text: string): SemVer {
  const v = isSemver(text) ? semver.parse(text) : null;
  if (!v) throw new Error(`"${text}" is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])`);
  return { major: v.major, minor: v.minor, patch: v.patch, prerelease: v.prerelease.map(String), build: [...v.build] };
}

/** -1 when a < b, 0 when they have the same precedence (build metadata ignored), 1 when a > b. Throws on non-semver input. */
export function compareSemver(a: string, b: string): -1 | 0 | 1 {
  parseSemver(a);
  parseSemver(b);
  return semver.compare(a, b);
}
