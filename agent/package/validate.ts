// The validation steps after staging, in the order the pipeline runs them. Kept here so that
// tests (and the CLI's `package inspect`, if wanted) check a package exactly as an update does.
import type { KeyObject } from 'node:crypto';
import type { Catalog, ServiceSpec } from '../config/services.js';
import { CaissonError } from '../errors.js';
import type { InstalledLookup } from './version-policy.js';
import { checkImageArchive, checkIntegrity, checkTarget, checkUpdaterVersion } from './checks.js';
import { recordInspection } from './image-inspector.js';
import { checkDeviceTarget, UNKNOWN_DEVICE, type DeviceContext } from './device-target.js';
import { checkExpiry, requireIssuedAt, type DeviceTime } from './freshness.js';
import { inflateLimit, inspectCompressedImage } from './inflate.js';
import { parseServiceManifest } from './manifest.js';
import { checkSignature, type SignatureResult } from './signature.js';
import { checkStack, checkStackMembers, type StackMemberCheck } from './stack-checks.js';
import { DEFAULT_STAGE_LIMITS, type ServiceManifest, type StackManifest, type StagedPackage, type StageLimits } from './types.js';

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
  manifest: ServiceManifest;
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
  manifest: ServiceManifest = parseServiceManifest(staged.manifestBytes),
): Promise<ValidatedPackage> {
  checkDeviceTarget(manifest, ctx.device ?? (() => UNKNOWN_DEVICE));
  const service = checkTarget(manifest, ctx.catalog);
  checkUpdaterVersion(manifest, ctx.updaterVersion);
  const signature = checkSignature(manifest, staged, ctx.trustedKeys);
  requireIssuedAt(manifest, signature.verified);
  checkExpiry(manifest, ctx.time ?? { clock: new Date() });
  checkIntegrity(manifest, staged);
  await inspectCompressedOnce(staged, signature.verified, ctx.limits);
  checkImageArchive(manifest, staged);
  return { manifest, service, signature };
}

export interface StackValidationContext extends ValidationContext {
  /** What Caisson installed before; with it the downgrade policy is checked for each member. */
  installed?: InstalledLookup;
  allowDowngrade?: boolean;
}

export interface ValidatedStack {
  manifest: StackManifest;
  /** Per service, in the manifest's (switch) order. */
  members: StackMemberCheck[];
  signature: SignatureResult;
}

/**
 * The same steps for a stack: device target → members (duplicates, catalog, revision,
 * platform, order) → updater version → signature → freshness → integrity → (image.tar.gz: inflate, bounded) → each
 * service's image in the archive → (when `installed` is given) each member's version policy.
 */
export async function validateStagedStack(staged: StagedPackage, ctx: StackValidationContext, manifest: StackManifest): Promise<ValidatedStack> {
  checkDeviceTarget(manifest, ctx.device ?? (() => UNKNOWN_DEVICE));
  checkStackMembers(manifest, ctx.catalog); // before the signature, as checkTarget
  checkUpdaterVersion(manifest, ctx.updaterVersion);
  const signature = checkSignature(manifest, staged, ctx.trustedKeys);
  requireIssuedAt(manifest, signature.verified);
  checkExpiry(manifest, ctx.time ?? { clock: new Date() });
  checkIntegrity(manifest, staged);
  await inspectCompressedOnce(staged, signature.verified, ctx.limits);
  if (!staged.archiveImages) {
    throw new CaissonError('image.invalid', `${staged.imageFileName} cannot be loaded: ${staged.imageArchiveProblem ?? 'it is not a docker save archive'}`);
  }
  const members = checkStack(manifest, {
    catalog: ctx.catalog,
    images: staged.archiveImages,
    installed: ctx.installed,
    packageId: staged.packageId,
    allowDowngrade: ctx.allowDowngrade,
  });
  return { manifest, members, signature };
}

/**
 * image.tar.gz is read as a docker-save archive only now, after its signature and pins were
 * checked (bounded by inflateLimit); image.tar was read while it was staged.
 */
async function inspectCompressedOnce(staged: StagedPackage, signed: boolean, limits: Partial<StageLimits> | undefined): Promise<void> {
  if (staged.imageFileName !== 'image.tar.gz' || staged.archiveImages || staged.imageArchiveProblem) return;
  const found = await inspectCompressedImage(staged, inflateLimit(staged, signed, { ...DEFAULT_STAGE_LIMITS, ...limits }));
  recordInspection(staged, found.images ? found : { problem: found.problem ?? 'it is not a docker save archive' });
}
