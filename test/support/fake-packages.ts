// Valid .edgepkg files without an engine: a docker-save-shaped image.tar holding only its
// manifest.json and config (all the reader and the fake engine look at), and a manifest
// that pins it. For pipeline unit tests on test/support/fake-engine.ts.
import { createHash, createPrivateKey, randomBytes, sign } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { renderManifest } from '../../agent/package/manifest.js';
import { tarEnd, tarEntry } from '../../agent/package/tar-writer.js';
import type { Behaviour } from './fake-engine.js';

export interface FakePackage {
  path: string;
  imageId: string;
  reference: string;
}

export interface FakePackageOptions {
  out: string;
  service: string;
  revision: string;
  version: string;
  reference: string;
  /** How containers of the image behave in the fake engine (default healthy). */
  behaviour?: Behaviour;
  platform?: string;
  /** The tags image.tar carries (default: the reference). */
  repoTags?: string[];
  /** issued_at / expires_at (RFC 3339), left out when not given. */
  issuedAt?: string;
  expiresAt?: string;
  /** [target] device_class / device_ids, left out when not given. */
  deviceClass?: string;
  deviceIds?: string[];
  /** Sign manifest.toml with this Ed25519 private key (PEM). */
  signWith?: string;
}

export function writeFakePackage(o: FakePackageOptions): FakePackage {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, nonce: randomBytes(8).toString('hex') }));
  const configHex = sha256(config);
  const entry: Record<string, unknown> = { Config: `${configHex}.json`, RepoTags: o.repoTags ?? [o.reference], Layers: [] };
  if (o.behaviour && o.behaviour !== 'healthy') entry.Behaviour = o.behaviour;
  const image = Buffer.concat([
    tarEntry({ name: 'manifest.json' }, Buffer.from(JSON.stringify([entry]))),
    tarEntry({ name: `${configHex}.json` }, config),
    tarEnd(),
  ]);
  const manifest = `format_version = 1
package_type = "service"
package_version = "${o.version}"
created_at = "2026-03-16T18:30:00Z"
${o.issuedAt ? `issued_at = "${o.issuedAt}"\n` : ''}${o.expiresAt ? `expires_at = "${o.expiresAt}"\n` : ''}
[target]
service = "${o.service}"
service_revision = "${o.revision}"
platform = "${o.platform ?? 'linux/amd64'}"
${o.deviceClass ? `device_class = "${o.deviceClass}"\n` : ''}${o.deviceIds ? `device_ids = ${JSON.stringify(o.deviceIds)}\n` : ''}
[image]
reference = "${o.reference}"
sha256 = "${sha256(image)}"
size = ${image.length}

[compatibility]
min_updater_version = "0.1.0"
`;
  const entries = [tarEntry({ name: 'manifest.toml' }, Buffer.from(manifest)), tarEntry({ name: 'image.tar' }, image)];
  if (o.signWith) {
    const sig = sign(null, Buffer.from(manifest), createPrivateKey(o.signWith)).toString('base64') + '\n';
    entries.push(tarEntry({ name: 'manifest.toml.sig' }, Buffer.from(sig)));
  }
  const pkg = Buffer.concat([...entries, tarEnd()]);
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(o.out, pkg);
  return { path: o.out, imageId: `sha256:${configHex}`, reference: o.reference };
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export interface FakeStackImage {
  service: string;
  revision: string;
  /** This service's new version. */
  version: string;
  reference: string;
  behaviour?: Behaviour;
  /** The engine refuses this image while loading it (a corrupt layer). */
  broken?: boolean;
  /** Leave this image out of the archive while the manifest still lists it. */
  missing?: boolean;
  /** The tags the archive carries for it (default: the reference). */
  repoTags?: string[];
}

export interface FakeStackPackage {
  path: string;
  name: string;
  version: string;
  /** Per service, in switch order: its image ID and reference. */
  images: { service: string; imageId: string; reference: string }[];
}

export interface FakeStackPackageOptions {
  out: string;
  name: string;
  version: string;
  services: FakeStackImage[];
  platform?: string;
}

/** A stack package: one docker-save-shaped archive holding every service's image (package_type = "stack"). */
export function writeFakeStackPackage(o: FakeStackPackageOptions): FakeStackPackage {
  const entries: Record<string, unknown>[] = [];
  const files: Buffer[] = [];
  const images = o.services.map((s) => {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, nonce: randomBytes(8).toString('hex') }));
    const configHex = sha256(config);
    if (!s.missing) {
      const entry: Record<string, unknown> = { Config: `${configHex}.json`, RepoTags: s.repoTags ?? [s.reference], Layers: [] };
      if (s.behaviour && s.behaviour !== 'healthy') entry.Behaviour = s.behaviour;
      if (s.broken) entry.Broken = true;
      entries.push(entry);
      files.push(tarEntry({ name: `${configHex}.json` }, config));
    }
    return { service: s.service, imageId: `sha256:${configHex}`, reference: s.reference };
  });
  const image = Buffer.concat([tarEntry({ name: 'manifest.json' }, Buffer.from(JSON.stringify(entries))), ...files, tarEnd()]);
  writeStackPackageFile(o.out, {
    name: o.name,
    version: o.version,
    platform: o.platform ?? 'linux/amd64',
    image,
    services: o.services.map((s, i) => ({ service: s.service, revision: s.revision, version: s.version, reference: s.reference, imageId: images[i]!.imageId })),
  });
  return { path: o.out, name: o.name, version: o.version, images };
}

/** What a stack package file holds: its manifest's services and the one image archive. */
export interface StackPackageFile {
  name: string;
  version: string;
  platform: string;
  image: Buffer;
  services: { service: string; revision: string; version: string; reference: string; imageId: string }[];
}

/** Write a stack package (manifest.toml rendered by the product's own renderManifest, then image.tar) to `out`. */
export function writeStackPackageFile(out: string, f: StackPackageFile): void {
  const manifest = renderManifest({
    format_version: 1,
    package_type: 'stack',
    package_version: f.version,
    created_at: '2026-03-16T18:30:00Z',
    stack: { name: f.name, platform: f.platform },
    image: { sha256: sha256(f.image), size: f.image.length },
    services: f.services.map((s) => ({ service: s.service, service_revision: s.revision, version: s.version, reference: s.reference, image_id: s.imageId })),
    compatibility: { min_updater_version: '0.1.0' },
  });
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, Buffer.concat([tarEntry({ name: 'manifest.toml' }, Buffer.from(manifest)), tarEntry({ name: 'image.tar' }, f.image), tarEnd()]));
}
