// The validation steps after staging, in the order the pipeline runs them. Kept here so that
// tests (and the CLI's `package inspect`, if wanted) check a package exactly as an update does.
import type { KeyObject } from 'node:crypto';
import type { Catalog, ServiceSpec } from '../config/services.js';
import { checkImageArchive, checkIntegrity, checkTarget, checkUpdaterVersion } from './checks.js';
import { checkDeviceTarget, UNKNOWN_DEVICE, type DeviceContext } from './device-target.js';
import { checkExpiry, requireIssuedAt, type DeviceTime } from './freshness.js';
import { inflateLimit, inspectCompressedImage } from './inflate.js';
import { parseManifest } from './manifest.js';
import { checkSignature, type SignatureResult } from './signature.js';
import { DEFAULT_STAGE_LIMITS, type Manifest, type StagedPackage, type StageLimits } from './types.js';

export interface ValidationContext {
  catalog: Catalog;
  trustedKeys: readonly KeyObject[];
  updaterVersion: string;
  /** Inflation limits for image.tar.gz (the defaults otherwise). */
  limits?: Partial<StageLimits>;
  /**
   * Who this device is, asked only for a package that targets devices. Without it such a
   * package is refused (an unknown device matches no target).
   */
  device?: () => DeviceContext;
  /** The device's clock and time floor (the real clock and no floor otherwise). */
  time?: DeviceTime;
}

export interface ValidatedPackage {
  manifest: Manifest;
  service: ServiceSpec;
  signature: SignatureResult;
}

/**
 * manifest → device target → target (catalog) → updater version → signature → freshness →
 * integrity → (image.tar.gz: inflate, bounded) → image archive. Nothing compressed is
 * inflated before the signature and the pins have been checked.
 */
export async function validateStaged(
  staged: StagedPackage,
  ctx: ValidationContext,
  manifest: Manifest = parseManifest(staged.manifestBytes),
): Promise<ValidatedPackage> {
  checkDeviceTarget(manifest, ctx.device ?? (() => UNKNOWN_DEVICE));
  const service = checkTarget(manifest, ctx.catalog);
  checkUpdaterVersion(manifest, ctx.updaterVersion);
  const signature = checkSignature(manifest, staged, ctx.trustedKeys);
  requireIssuedAt(manifest, signature.verified);
  checkExpiry(manifest, ctx.time ?? { clock: new Date() });
  checkIntegrity(manifest, staged);
  if (staged.imageFileName === 'image.tar.gz' && !staged.imageArchive && !staged.imageArchiveProblem) {
    const limits = { ...DEFAULT_STAGE_LIMITS, ...ctx.limits };
    const found = await inspectCompressedImage(staged, inflateLimit(staged, signature.verified, limits));
    if (found.info) staged.imageArchive = found.info;
    else staged.imageArchiveProblem = found.problem;
  }
  checkImageArchive(manifest, staged);
  return { manifest, service, signature };
}
