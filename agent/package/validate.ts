// The validation steps after staging, in the order the pipeline runs them. Kept here so that
// tests (and the CLI's `package inspect`, if wanted) check a package exactly as an update does.
import type { KeyObject } from 'node:crypto';
import type { Catalog, ServiceSpec } from '../config/services.js';
import { checkImageArchive, checkIntegrity, checkTarget, checkUpdaterVersion } from './checks.js';
import { parseManifest } from './manifest.js';
import { checkSignature, type SignatureResult } from './signature.js';
import type { Manifest, StagedPackage } from './types.js';

export interface ValidationContext {
  catalog: Catalog;
  trustedKeys: readonly KeyObject[];
  updaterVersion: string;
}

export interface ValidatedPackage {
  manifest: Manifest;
  service: ServiceSpec;
  signature: SignatureResult;
}

/** manifest → target → updater version → signature → integrity → image archive. */
export function validateStaged(
  staged: StagedPackage,
  ctx: ValidationContext,
  manifest: Manifest = parseManifest(staged.manifestBytes),
): ValidatedPackage {
  const service = checkTarget(manifest, ctx.catalog);
  checkUpdaterVersion(manifest, ctx.updaterVersion);
  const signature = checkSignature(manifest, staged, ctx.trustedKeys);
  checkIntegrity(manifest, staged);
  checkImageArchive(manifest, staged);
  return { manifest, service, signature };
}
