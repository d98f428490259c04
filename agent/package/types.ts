// Shapes shared by the package reader, validator and builder.
import type { ImageArchiveInfo } from './image-archive.js';

/** What one streaming pass over an .edgepkg leaves in the staging folder. */
export interface StagedPackage {
  /** Staging folder, created by Caisson (never named by the archive). */
  dir: string;
  /** The package's identity (hex SHA-256 over the manifest bytes and the image digest; identity.ts). */
  packageId: string;
  packageSize: number;
  /** The exact bytes of manifest.toml (what a signature covers). */
  manifestBytes: Buffer;
  /** Staged copy of image.tar (or image.tar.gz), hashed while it was copied. */
  imagePath: string;
  imageFileName: 'image.tar' | 'image.tar.gz';
  imageSha256: string;
  imageSize: number;
  /** Contents of manifest.toml.sig, when present. */
  signature?: Buffer;
  /**
   * What the docker-save archive says about EVERY image it holds, in its manifest.json order
   * (config digest, diff IDs, repo tags, platform each): read during the same pass for
   * image.tar; for image.tar.gz only after the signature and pins were checked (validate.ts,
   * inflate.ts). A stack package's validation finds each service's image here.
   */
  archiveImages?: ImageArchiveInfo[];
  /** The archive's only image, when it holds exactly one (what a service package needs). */
  imageArchive?: ImageArchiveInfo;
  /** Set when the image entry was encrypted (image.tar.age): what was decrypted, and from what. */
  encryption?: { entryName: string; sha256: string; size: number; recipients: number };
  /** Why archiveImages is missing (not a docker-save archive, broken, …), when known. */
  imageArchiveProblem?: string;
}

export type { ImageArchiveInfo } from './image-archive.js';

/**
 * The keys every package type shares, in one place (manifest.ts parses them once for all
 * types), so a key added for every package lands here and nowhere else.
 */
export interface ManifestCommon extends FreshnessKeys {
  format_version: 1;
  package_version: string;
  created_at: string;
  compatibility: { min_updater_version: string };
  /** The image entry is encrypted: how, for whom, and what exactly (the encrypted entry). */
  encryption?: ManifestEncryption;
}

export interface ManifestEncryption {
  scheme: 'age-v1-x25519';
  /** Recipient IDs (deviceIdFor of each public key), in the order of the header's stanzas. */
  recipients: string[];
  /** SHA-256 and size of the encrypted entry as it is in the package. */
  sha256: string;
  size: number;
}

/** A package of one new version of one service (package_type = "service"). */
export interface ServiceManifest extends ManifestCommon {
  package_type: 'service';
  target: { service: string; service_revision: string; platform: string } & DeviceTargetKeys;
  image: { reference: string; sha256?: string; size?: number };
}

/** One service of a stack: which catalog entry, its new version and its image in the archive. */
export interface StackServiceEntry {
  /** The catalog name (services.toml `name`). */
  service: string;
  /** Must equal the catalog's service_revision, as target.service_revision does. */
  service_revision: string;
  /** This service's new version (semantic version): downgrade policy and reports use it. */
  version: string;
  /** The tag the image carries in the archive and on the device. */
  reference: string;
  /** sha256:<hex> of the image's config: which image of the archive is this service's. */
  image_id: string;
}

/**
 * A package that updates several services of the catalog at once, all or nothing
 * (package_type = "stack"). `services` is the switch order (checked against depends_on).
 * `image` pins the one image archive entry, which holds every service's image.
 */
export interface StackManifest extends ManifestCommon {
  package_type: 'stack';
  stack: { name: string; platform: string };
  /** Device targeting only (a stack's services are in `services`). */
  target?: DeviceTargetKeys;
  image: { sha256?: string; size?: number };
  services: StackServiceEntry[];
}

export type Manifest = ServiceManifest | StackManifest;
export type PackageType = Manifest['package_type'];

/** Most services one stack package may update. */
export const MAX_STACK_SERVICES = 16;

/** When a package was issued and until when it may be applied (RFC 3339; package/freshness.ts). */
export interface FreshnessKeys {
  issued_at?: string;
  expires_at?: string;
}

/** Which devices a package is for, beyond the service (package/device-target.ts). */
export interface DeviceTargetKeys {
  device_class?: string;
  device_ids?: string[];
}

export interface StageLimits {
  /** Largest .edgepkg accepted, in bytes. */
  maxPackageBytes: number;
  /** Largest manifest.toml, in bytes (64 KiB by the format). */
  maxManifestBytes: number;
  /** Largest manifest.toml.sig, in bytes. */
  maxSignatureBytes: number;
  /** Most bytes image.tar.gz may inflate to (inflate.ts), even when signed. */
  maxImageBytes: number;
  /** Most image.tar.gz may inflate to per compressed byte, unless a trusted key signed it. */
  maxInflateRatio: number;
  /**
   * Longest wait for one open, stat or read of the package. A stick that stops answering
   * (a dead device, a wedged filesystem) fails the package with package.read_failed instead
   * of holding the queue for ever.
   */
  stallMs: number;
}

export const DEFAULT_STAGE_LIMITS: StageLimits = {
  maxPackageBytes: 16 * 1024 ** 3,
  maxManifestBytes: 64 * 1024,
  maxSignatureBytes: 4 * 1024,
  maxImageBytes: 64 * 1024 ** 3,
  // docker images gzip 2-5x; a layer of zeros reaches ~1000x, a bomb far more
  maxInflateRatio: 20,
  stallMs: 60_000,
};

/** Bytes done so far, for progress bars. */
export type ProgressFn = (done: number, total: number) => void;
