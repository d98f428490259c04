// Stack packages from local images, for the real-engine tests: one `docker save` of every
// service's image (shared layers once), a stack manifest pinning that archive and naming
// each service's image by its config digest (docs/package-format.md, "Stack packages").
// `corruptImage` damages one image's layer inside the archive and pins the damaged archive,
// so the package passes every check and the engine refuses that image during the load.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeStackPackageFile } from './fake-packages.js';

export interface StackPackageService {
  service: string;
  revision: string;
  version: string;
  /** A local image tagged with the reference the package carries. */
  reference: string;
}

export interface StackPackageOptions {
  name: string;
  version: string;
  services: StackPackageService[];
  out: string;
  /** Damage this reference's own layer in the archive (the manifest pins the damaged archive). */
  corruptImage?: string;
}

export function buildStackPackage(o: StackPackageOptions): string {
  const tmp = `${o.out}.image.tar`;
  mkdirSync(dirname(o.out), { recursive: true });
  execFileSync('docker', ['save', '-o', tmp, ...o.services.map((s) => s.reference)]);
  let image: Buffer = readFileSync(tmp);
  rmSync(tmp, { force: true });
  const ids = configDigests(image, o.services.map((s) => s.reference));
  if (o.corruptImage) image = corruptLayerOf(image, o.corruptImage);
  writeStackPackageFile(o.out, {
    name: o.name,
    version: o.version,
    platform: 'linux/amd64',
    image,
    services: o.services.map((s, i) => ({ ...s, imageId: ids[i]! })),
  });
  return o.out;
}

/**
 * Each reference's config digest, read from the archive `docker save` wrote (on the
 * containerd image store the engine's own image ID is a manifest digest, not this).
 */
function configDigests(tar: Buffer, refs: string[]): string[] {
  const files = tarFiles(tar);
  const entries = saveManifest(tar, files) as { RepoTags?: string[]; Config: string }[];
  return refs.map((ref) => {
    const config = files.find((f) => f.name === entries.find((e) => e.RepoTags?.includes(ref))?.Config);
    if (!config) throw new Error(`docker save wrote no config for ${ref}`);
    return `sha256:${createHash('sha256').update(tar.subarray(config.at, config.at + config.size)).digest('hex')}`;
  });
}

/** The entries of the archive's manifest.json. */
function saveManifest(tar: Buffer, files: TarFile[]): unknown[] {
  const manifestFile = files.find((f) => f.name === 'manifest.json');
  if (!manifestFile) throw new Error('docker save wrote no manifest.json');
  return JSON.parse(tar.subarray(manifestFile.at, manifestFile.at + manifestFile.size).toString('utf8')) as unknown[];
}

interface TarFile {
  name: string;
  /** Offset of the content in the archive. */
  at: number;
  size: number;
}

function tarFiles(tar: Buffer): TarFile[] {
  const files: TarFile[] = [];
  for (let o = 0; o + 512 <= tar.length; ) {
    const h = tar.subarray(o, o + 512);
    if (h.every((b) => b === 0)) break;
    const field = (a: number, b: number) => h.subarray(a, b).toString('utf8').replace(/\0.*$/s, '');
    const name = (field(345, 500) ? `${field(345, 500)}/` : '') + field(0, 100);
    const size = parseInt(field(124, 136).trim() || '0', 8);
    files.push({ name, at: o + 512, size });
    o += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** Flip bytes in the middle of the last layer of `reference` (legacy `docker save` layout). */
function corruptLayerOf(tar: Buffer, reference: string): Buffer {
  const files = tarFiles(tar);
  const entries = saveManifest(tar, files) as { RepoTags?: string[]; Layers: string[] }[];
  const entry = entries.find((e) => e.RepoTags?.includes(reference));
  const layerName = entry?.Layers.at(-1);
  const layer = files.find((f) => f.name === layerName);
  if (!layer || layer.size < 2048) throw new Error(`no layer of ${reference} to damage in the archive`);
  const out = Buffer.from(tar);
  const mid = layer.at + Math.floor(layer.size / 2);
  for (let i = 0; i < 64; i++) out[mid + i] = out[mid + i]! ^ 0xff;
  return out;
}

/** Where the test keeps packages. */
export function packagePath(dir: string, name: string): string {
  return join(dir, 'pkg', name);
}
