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
   * What the docker-save archive says about itself: read during the same pass for image.tar;
   * for image.tar.gz only after the signature and pins were checked (validate.ts, inflate.ts).
   */
  imageArchive?: ImageArchiveInfo;
  /** Why imageArchive is missing (not a docker-save archive, several images, …), when known. */
  imageArchiveProblem?: string;
}

export type { ImageArchiveInfo } from './image-archive.js';

export interface Manifest extends FreshnessKeys {
  format_version: 1;
  package_type: 'service';
  package_version: string;
  created_at: string;
  target: { service: string; service_revision: string; platform: string } & DeviceTargetKeys;
  image: { reference: string; sha256?: string; size?: number };
  compatibility: { min_updater_version: string };
}

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
