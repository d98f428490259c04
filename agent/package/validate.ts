// The validation steps after staging, in the order the pipeline runs them. Kept here so that
// tests (and the CLI's `package inspect`, if wanted) check a package exactly as an update does.
import type { KeyObject } from 'node:crypto';
import type { Catalog, ServiceSpec } from '../config/services.js';
import { checkImageArchive, checkIntegrity, checkTarget, checkUpdaterVersion } from './checks.js';
import { inflateLimit, inspectCompressedImage } from './inflate.js';
import { parseServiceManifest } from './manifest.js';
import { checkSignature, type SignatureResult } from './signature.js';
import { DEFAULT_STAGE_LIMITS, type ServiceManifest, type StagedPackage, type StageLimits } from './types.js';

export interface ValidationContext {
  catalog: Catalog;
  trustedKeys: readonly KeyObject[];
  updaterVersion: string;
  /** Inflation limits for image.tar.gz (the defaults otherwise). */
  limits?: Partial<StageLimits>;
}

export interface ValidatedPackage {
  manifest: ServiceManifest;
  service: ServiceSpec;
  signature: SignatureResult;
}

/**
 * manifest → target → updater version → signature → integrity → (image.tar.gz: inflate,
 * bounded) → image archive. Nothing compressed is inflated before the signature and the
 * pins have been checked.
 */
export async function validateStaged(
  staged: StagedPackage,
  ctx: ValidationContext,
  manifest: ServiceManifest = parseServiceManifest(staged.manifestBytes),
): Promise<ValidatedPackage> {
  const service = checkTarget(manifest, ctx.catalog);
  checkUpdaterVersion(manifest, ctx.updaterVersion);
  const signature = checkSignature(manifest, staged, ctx.trustedKeys);
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
