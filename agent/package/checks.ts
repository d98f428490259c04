// Pure checks of a parsed manifest against the device and the staged package.
// Each throws a CaissonError with one stable code; none touches Docker or the disk.
import { CaissonError } from '../errors.js';
import { findService, type Catalog, type ServiceSpec } from '../config/services.js';
import { imagePlatform, samePlatform } from './image-archive.js';
import { compareSemver } from './semver.js';
import type { Manifest, ServiceManifest, StagedPackage } from './types.js';

/** The catalog entry the package is for; its revision and platform must match exactly. */
export function checkTarget(manifest: ServiceManifest, catalog: Catalog): ServiceSpec {
  const { service, service_revision: revision, platform } = manifest.target;
  const spec = findService(catalog, service);
  if (!spec) {
    throw new CaissonError('manifest.unknown_service', `the package is for service "${service}", which is not in this device's catalog`);
  }
  if (spec.service_revision !== revision) {
    throw new CaissonError(
      'manifest.revision_mismatch',
      `the package is for ${service} revision "${revision}", this device runs revision "${spec.service_revision}"`,
    );
  }
  if (spec.platform !== platform) {
    throw new CaissonError('manifest.platform_mismatch', `the package is for platform ${platform}, this device's ${service} runs on ${spec.platform}`);
  }
  return spec;
}

/** The package may require a minimum updater version. */
export function checkUpdaterVersion(manifest: Manifest, updaterVersion: string): void {
  const need = manifest.compatibility.min_updater_version;
  if (compareSemver(updaterVersion, need) < 0) {
    throw new CaissonError('manifest.updater_too_old', `the package needs Caisson ${need} or newer; this device runs ${updaterVersion}`);
  }
}

/**
 * The staged image must be exactly what the manifest pins (when it pins anything): the
 * encrypted entry as it was in the package, and the image archive it decrypted to.
 */
export function checkIntegrity(manifest: Manifest, staged: StagedPackage): void {
  checkEncryption(manifest, staged);
  const { size, sha256 } = manifest.image;
  if (size !== undefined && size !== staged.imageSize) {
    throw new CaissonError('integrity.size_mismatch', `${staged.imageFileName} is ${staged.imageSize} bytes, the manifest says ${size}`);
  }
  if (sha256 !== undefined && sha256 !== staged.imageSha256) {
    throw new CaissonError(
      'integrity.sha256_mismatch',
      `${staged.imageFileName} has SHA-256 ${staged.imageSha256}, the manifest says ${sha256}`,
    );
  }
}

/**
 * image.tar must be a docker-save archive of exactly one image whose tags are exactly
 * [manifest.image.reference]: `docker load` would otherwise (re)tag other images.
 */
export function checkImageArchive(manifest: ServiceManifest, staged: StagedPackage): void {
  const info = staged.imageArchive;
  if (!info) {
    const several = staged.archiveImages && `it holds ${staged.archiveImages.length} images; a service package holds exactly one`;
    const why = staged.imageArchiveProblem ?? several ?? 'it is not a docker save archive';
    throw new CaissonError('image.invalid', `${staged.imageFileName} cannot be loaded: ${why}`);
  }
  const want = manifest.image.reference;
  if (info.repoTags.length !== 1 || info.repoTags[0] !== want) {
    const got = info.repoTags.length ? info.repoTags.map((t) => JSON.stringify(t.slice(0, 200))).join(', ') : 'no tags';
    throw new CaissonError('image.reference_mismatch', `${staged.imageFileName} tags ${got}; the manifest names "${want}"`);
  }
  // the image the device will run is the one for its platform (a multi-platform index may
  // hold others; the containerd store picks this platform's, the classic store manifest.json's)
  const platform = imagePlatform(info);
  if (!samePlatform(platform, manifest.target.platform)) {
    throw new CaissonError('image.platform_mismatch', `${staged.imageFileName} holds an image for ${platform}; the manifest's target.platform is ${manifest.target.platform}`);
  }
  // the containerd image store names what it loads from an OCI archive after index.json
  const full = fullImageName(want);
  const other = info.indexNames.find((n) => n !== full);
  if (other !== undefined) {
    throw new CaissonError('image.reference_mismatch', `${staged.imageFileName}'s index.json names ${JSON.stringify(other.slice(0, 200))}; the manifest names "${want}"`);
  }
}

/** Docker's full spelling of a reference: "app:1" → "docker.io/library/app:1". */
export function fullImageName(ref: string): string {
  const slash = ref.indexOf('/');
  const first = slash < 0 ? '' : ref.slice(0, slash);
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost')) return ref;
  return slash < 0 ? `docker.io/library/${ref}` : `docker.io/${ref}`;
}

/** The manifest declares encryption exactly when the image entry is encrypted, and pins that entry. */
export function checkEncryption(manifest: Manifest, staged: StagedPackage): void {
  const declared = manifest.encryption;
  const found = staged.encryption;
  if (!declared && !found) return;
  if (!declared) {
    throw new CaissonError('crypto.declaration_mismatch', `the image entry ${found!.entryName} is encrypted but manifest.toml has no [encryption] table`);
  }
  if (!found) {
    throw new CaissonError('crypto.declaration_mismatch', `manifest.toml declares an encrypted image but ${staged.imageFileName} is not encrypted`);
  }
  if (declared.size !== found.size) {
    throw new CaissonError('integrity.size_mismatch', `${found.entryName} is ${found.size} bytes, the manifest says ${declared.size}`);
  }
  if (declared.sha256 !== found.sha256) {
    throw new CaissonError('integrity.sha256_mismatch', `${found.entryName} has SHA-256 ${found.sha256}, the manifest says ${declared.sha256}`);
  }
  if (declared.recipients.length !== found.recipients) {
    throw new CaissonError('crypto.declaration_mismatch', `${found.entryName} has ${found.recipients} recipient stanzas, the manifest lists ${declared.recipients.length} recipients`);
  }
}
