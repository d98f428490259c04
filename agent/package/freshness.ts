// Freshness (docs/package-format.md, "Freshness"): a package may say when it was issued and
// until when it may be applied. Devices often have no real-time clock, so the device's time
// is the later of its clock and its time floor: the newest issued_at of a signed package it
// committed (store/freshness.ts). Pure checks over the keys every package type shares.
import { CaissonError } from '../errors.js';
import { rfc3339Millis } from './manifest.js';
import type { FreshnessKeys } from './types.js';

/** What the device knows about the time. */
export interface DeviceTime {
  /** The device's clock (injected: tests use a fake one). */
  clock: Date;
  /** The newest issued_at of a signed package this device committed, if any. */
  floor?: string | undefined;
}

/** A signed manifest must say when it was issued: without it, replays cannot be ordered. */
export function requireIssuedAt(manifest: FreshnessKeys, signed: boolean): void {
  if (signed && manifest.issued_at === undefined) {
    throw new CaissonError('signature.no_issued_at', 'the signed manifest has no issued_at, so this device cannot tell how old it is');
  }
}

/**
 * Refuse a package whose expires_at is not after the device's time (the later of its clock
 * and its floor). Applies to every package that carries expires_at, signed or not: the key
 * can only make a device refuse more.
 */
export function checkExpiry(manifest: FreshnessKeys, time: DeviceTime): void {
  if (manifest.expires_at === undefined) return;
  const clockMs = time.clock.getTime();
  const floorMs = time.floor === undefined ? -Infinity : rfc3339Millis(time.floor);
  const nowMs = Math.max(clockMs, floorMs);
  if (nowMs < rfc3339Millis(manifest.expires_at)) return;
  const clock = time.clock.toISOString();
  const basis = floorMs > clockMs ? `the newest package it accepted was issued ${time.floor} (its clock says ${clock})` : `its clock says ${clock}`;
  throw new CaissonError('policy.expired', `the package expired at ${manifest.expires_at}; this device's time is past it: ${basis}`);
}

/**
 * Refuse a signed package issued before the newest one this device committed for the same
 * service (a captured old package replayed), unless the local operator allows going back.
 * An unsigned package's issued_at vouches for nothing and is not compared.
 */
export function checkIssueOrder(
  manifest: FreshnessKeys,
  service: string,
  newestAccepted: string | undefined,
  opts: { signed: boolean; allowDowngrade: boolean },
): void {
  if (!opts.signed || opts.allowDowngrade || newestAccepted === undefined || manifest.issued_at === undefined) return;
  if (rfc3339Millis(manifest.issued_at) >= rfc3339Millis(newestAccepted)) return;
  throw new CaissonError(
    'policy.older_issue',
    `the package was issued at ${manifest.issued_at}, before the ${service} package this device already accepted (issued ${newestAccepted})`,
  );
}
