// From a stack package to what the pipeline installs: every check of the format side
// (package/validate.ts validateStagedStack: members, order, signature, integrity, each image
// in the archive), mapped to each service's catalog entry, new version, reference and the
// image the archive pins for it. The version policy is the pipeline's (after the once-only
// check, as for a service package).
import type { KeyObject } from 'node:crypto';
import type { Catalog } from '../config/services.js';
import { validateStagedStack } from '../package/validate.js';
import type { StackManifest, StagedPackage } from '../package/types.js';
import type { StackTarget } from './stack.js';

export interface StackValidationContext {
  catalog: Catalog;
  trustedKeys: readonly KeyObject[];
  updaterVersion: string;
}

export async function validateStack(staged: StagedPackage, manifest: StackManifest, ctx: StackValidationContext): Promise<StackTarget> {
  const { members } = await validateStagedStack(staged, ctx, manifest);
  return {
    name: manifest.stack.name,
    version: manifest.package_version,
    members: members.map((m) => ({ service: m.service, version: m.entry.version, reference: m.entry.reference, expected: m.image })),
  };
}
