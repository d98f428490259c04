// Pure checks of a stack package's manifest against the device (catalog, installed versions)
// and its image archive. Each throws one CaissonError with a stable code; none touches Docker
// or the disk. Together they reject, before anything changes, a stack that names a service
// twice or one not in the catalog, switches a service before one it depends on, is for
// another platform or revision, goes back a version, or whose archive does not hold exactly
// the images and tags the manifest pins.
import { CaissonError } from '../errors.js';
import { dependenciesOf, findService, type Catalog, type ServiceSpec } from '../config/services.js';
import { checkVersionPolicy, type InstalledLookup } from './version-policy.js';
import { fullImageName } from './checks.js';
import type { ImageArchiveInfo, StackManifest, StackServiceEntry } from './types.js';

/** One service of a validated stack: what it is, where it goes, and its image. */
export interface StackMemberCheck {
  entry: StackServiceEntry;
  service: ServiceSpec;
  /** Its image in the archive (what the engine's copy is judged against after the load). */
  image: ImageArchiveInfo;
  /** The version Caisson installed before, when it did. */
  fromVersion: string | undefined;
}

export interface StackCheckInput {
  catalog: Catalog;
  /** Every image of the staged archive (StagedPackage.archiveImages). */
  images: readonly ImageArchiveInfo[];
  /** What Caisson installed before; without it the version policy is not checked. */
  installed?: InstalledLookup | undefined;
  packageId: string;
  allowDowngrade?: boolean | undefined;
}

/** The checks of a stack against the device and its archive, in order; per-service results. */
export function checkStack(manifest: StackManifest, input: StackCheckInput): StackMemberCheck[] {
  const specs = checkStackMembers(manifest, input.catalog);
  const images = checkStackImages(manifest, input.images);
  if (input.installed) checkStackPolicy(manifest, input.installed, input.packageId, input.allowDowngrade === true);
  return manifest.services.map((entry, i) => ({
    entry,
    service: specs[i]!,
    image: images[i]!,
    fromVersion: input.installed?.installed(entry.service)?.package_version,
  }));
}

/**
 * Each service once, in the catalog, of the catalog's revision and the stack's platform, and
 * listed after every member it depends on (directly or through others). Returns the catalog
 * entries in the manifest's order.
 */
export function checkStackMembers(manifest: StackManifest, catalog: Catalog): ServiceSpec[] {
  const seen = new Set<string>();
  for (const { service } of manifest.services) {
    if (seen.has(service)) throw new CaissonError('manifest.duplicate_service', `the stack ${manifest.stack.name} names service "${service}" twice`);
    seen.add(service);
  }
  const specs = manifest.services.map((entry) => memberSpec(manifest, entry, catalog));
  checkStackOrder(manifest, catalog);
  return specs;
}

function memberSpec(manifest: StackManifest, entry: StackServiceEntry, catalog: Catalog): ServiceSpec {
  const { service, service_revision: revision } = entry;
  const spec = findService(catalog, service);
  if (!spec) {
    throw new CaissonError('manifest.unknown_service', `the stack ${manifest.stack.name} names service "${service}", which is not in this device's catalog`);
  }
  if (spec.service_revision !== revision) {
    throw new CaissonError(
      'manifest.revision_mismatch',
      `the stack ${manifest.stack.name} is for ${service} revision "${revision}", this device runs revision "${spec.service_revision}"`,
    );
  }
  if (spec.platform !== manifest.stack.platform) {
    throw new CaissonError('manifest.platform_mismatch', `the stack is for platform ${manifest.stack.platform}, this device's ${service} runs on ${spec.platform}`);
  }
  return spec;
}

/**
 * The manifest's order is the switch order: a member comes after every member it depends on
 * in services.toml (depends_on, followed through services outside the stack too).
 */
export function checkStackOrder(manifest: StackManifest, catalog: Catalog): void {
  const position = new Map(manifest.services.map((s, i) => [s.service, i]));
  manifest.services.forEach(({ service }, i) => {
    for (const dep of dependenciesOf(catalog, service)) {
      const at = position.get(dep);
      if (at !== undefined && at > i) {
        throw new CaissonError('manifest.bad_order', `the stack ${manifest.stack.name} switches ${service} before ${dep}, which ${service} depends on (services.toml depends_on)`);
      }
    }
  });
}

/**
 * Each service's image_id is an image of the archive, for the stack's platform, tagged with
 * the service's reference; the archive holds no other image and no other tag (docker load
 * applies every tag it finds), and in the OCI layout index.json names nothing else.
 * Returns each service's image, in the manifest's order.
 */
export function checkStackImages(manifest: StackManifest, images: readonly ImageArchiveInfo[]): ImageArchiveInfo[] {
  const byId = new Map(images.map((img) => [img.imageId, img]));
  const found = manifest.services.map((entry) => {
    const img = byId.get(entry.image_id);
    if (!img) {
      throw new CaissonError('image.not_in_archive', `the image archive holds no image ${entry.image_id.slice(0, 19)}… for ${entry.service} (${entry.reference})`);
    }
    if (!img.repoTags.includes(entry.reference)) {
      const tags = img.repoTags.length ? img.repoTags.map((t) => JSON.stringify(t.slice(0, 200))).join(', ') : 'no tag';
      throw new CaissonError('image.not_in_archive', `the image ${entry.image_id.slice(0, 19)}… for ${entry.service} carries ${tags} in the archive, not "${entry.reference}"`);
    }
    checkImagePlatform(manifest, entry, img);
    return img;
  });
  const pinned = new Set(manifest.services.map((s) => s.image_id));
  const extra = images.find((img) => !pinned.has(img.imageId));
  if (extra) {
    throw new CaissonError('image.invalid', `the image archive holds the image ${extra.imageId.slice(0, 19)}… (${extra.repoTags.join(', ') || 'untagged'}), which no service of the stack names`);
  }
  const references = new Set(manifest.services.map((s) => s.reference));
  for (const img of images) {
    const other = img.repoTags.find((t) => !references.has(t));
    if (other !== undefined) throw new CaissonError('image.reference_mismatch', `the image archive tags ${JSON.stringify(other.slice(0, 200))}, which no service of the stack names`);
    // the containerd image store names what it loads from an OCI archive after index.json
    const names = new Set(manifest.services.filter((s) => s.image_id === img.imageId).map((s) => fullImageName(s.reference)));
    const otherName = img.indexNames.find((n) => !names.has(n));
    if (otherName !== undefined) {
      throw new CaissonError('image.reference_mismatch', `the image archive's index.json names ${JSON.stringify(otherName.slice(0, 200))}, which no service of the stack names for that image`);
    }
  }
  return found;
}

function checkImagePlatform(manifest: StackManifest, entry: StackServiceEntry, img: ImageArchiveInfo): void {
  const platform = manifest.stack.platform;
  const full = [img.os, img.architecture, img.variant].filter(Boolean).join('/');
  if (platform !== full && platform !== `${img.os}/${img.architecture}`) {
    throw new CaissonError('manifest.platform_mismatch', `the image of ${entry.service} in the archive is for ${full}, the stack for ${platform}`);
  }
}

/** The downgrade policy for every member: its version against what it has had. */
export function checkStackPolicy(manifest: StackManifest, installed: InstalledLookup, packageId: string, allowDowngrade: boolean): void {
  for (const entry of manifest.services) {
    checkVersionPolicy(installed.installed(entry.service), entry.service, entry.version, packageId, allowDowngrade);
  }
}
