// Semantic Versioning 2.0.0 precedence (https://semver.org/#spec-item-11).
// Build metadata (+...) is ignored; a pre-release sorts before its release.
import { SEMVER_PATTERN } from '../config/patterns.js';

export interface SemVer {
  major: number;
  minor: number;
  patch: number;
  prerelease: string[];
  build: string[];
}

export function isSemver(text: string): boolean {
  return SEMVER_PATTERN.test(text);
}

export function parseSemver(text: string): SemVer {
  const m = SEMVER_PATTERN.exec(text);
  if (!m) throw new Error(`"${text}" is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])`);
  return {
    major: Number(m[1]),
    minor: Number(m[2]),
    patch: Number(m[3]),
    prerelease: m[4] ? m[4].split('.') : [],
    build: m[5] ? m[5].split('.') : [],
  };
}

/** -1 when a < b, 0 when they have the same precedence, 1 when a > b. Throws on non-semver input. */
export function compareSemver(a: string, b: string): -1 | 0 | 1 {
  const x = parseSemver(a);
  const y = parseSemver(b);
  for (const key of ['major', 'minor', 'patch'] as const) {
    if (x[key] !== y[key]) return x[key] < y[key] ? -1 : 1;
  }
  const p = x.prerelease;
  const q = y.prerelease;
  if (p.length === 0 && q.length === 0) return 0;
  if (p.length === 0) return 1; // a release outranks its pre-releases
  if (q.length === 0) return -1;
  for (let i = 0; i < Math.max(p.length, q.length); i++) {
    const s = p[i];
    const t = q[i];
    if (s === undefined) return -1; // fewer fields sorts first
    if (t === undefined) return 1;
    if (s === t) continue;
    const sNum = /^[0-9]+$/.test(s);
    const tNum = /^[0-9]+$/.test(t);
    if (sNum && tNum) {
      const d = BigInt(s) - BigInt(t);
      return d < 0n ? -1 : 1;
    }
    if (sNum) return -1; // numeric identifiers sort before alphanumeric ones
    if (tNum) return 1;
    return s < t ? -1 : 1; // ASCII order
  }
  return 0;
}
