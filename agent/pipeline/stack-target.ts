// From a stack package that passed the package checks to what the pipeline installs: each
// service's catalog entry, new version, reference and the image the archive pins for it.
// INTERIM: the checks themselves belong to package/validate.ts (the format side); this
// calls them once they exist and only maps the result.
import type { KeyObject } from 'node:crypto';
import { findService, type Catalog } from '../config/services.js';
import { CaissonError } from '../errors.js';
import { checkIntegrity, checkUpdaterVersion } from '../package/checks.js';
import { checkSignature } from '../package/signature.js';
import type { StackManifest, StagedPackage } from '../package/types.js';
import type { StackTarget } from './stack.js';

export interface StackValidationContext {
  catalog: Catalog;
  trustedKeys: readonly KeyObject[];
  updaterVersion: string;
}

export async function validateStack(staged: StagedPackage, manifest: StackManifest, ctx: StackValidationContext): Promise<StackTarget> {
  const seen = new Set<string>();
  const members = manifest.services.map((entry) => {
    if (seen.has(entry.service)) throw new CaissonError('manifest.invalid', `the stack names ${entry.service} twice`);
    seen.add(entry.service);
    const service = findService(ctx.catalog, entry.service);
    if (!service) throw new CaissonError('manifest.unknown_service', `the stack updates service "${entry.service}", which is not in this device's catalog`);
    if (service.service_revision !== entry.service_revision) {
      throw new CaissonError('manifest.revision_mismatch', `the stack is for ${entry.service} revision "${entry.service_revision}", this device runs revision "${service.service_revision}"`);
    }
    if (service.platform !== manifest.stack.platform) {
      throw new CaissonError('manifest.platform_mismatch', `the stack is for platform ${manifest.stack.platform}, this device's ${entry.service} runs on ${service.platform}`);
    }
    const expected = staged.archiveImages?.find((i) => i.imageId === entry.image_id);
    return { service, version: entry.version, reference: entry.reference, expected };
  });
  checkUpdaterVersion(manifest, ctx.updaterVersion);
  checkSignature(manifest, staged, ctx.trustedKeys);
  checkIntegrity(manifest, staged);
  return { name: manifest.stack.name, version: manifest.package_version, members };
}
