// A package's identity: what it delivers, not the tar framing around it. One SHA-256 over
// the exact bytes of manifest.toml and the digest of the image, both of which the staging
// pass has anyway, so a package is hashed once (a second digest over the whole file cost a
// core's worth of hashing per update). The signature is left out on purpose: the same
// content signed again (say, with a new vendor key) is the same package.
import { createHash } from 'node:crypto';

/** Versioned, so that a later definition can never collide with this one. */
const DOMAIN = 'caisson-package-id/1';

export function packageIdOf(manifestBytes: Buffer, imageFileName: string, imageSha256: string): string {
  const manifestSha256 = createHash('sha256').update(manifestBytes).digest('hex');
  return createHash('sha256').update(`${DOMAIN}\nmanifest.toml ${manifestSha256}\n${imageFileName} ${imageSha256}\n`).digest('hex');
}
