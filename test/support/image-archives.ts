// Crafted docker-save archives (test data only): the two layouts `docker save` writes, built
// from scratch so each rule of the image-archive reader can be tested without an engine, and
// so that a hostile variant differs from a valid one in exactly one place.
import { createHash } from 'node:crypto';
import { paxBody, tarEnd, tarEntry } from '../../agent/package/tar-stream.js';

export type CraftEntry =
  | { name: string; data: Buffer | string; type?: 'file' }
  | { name: string; type: 'dir' }
  | { name: string; type: 'symlink' | 'hardlink'; target: string }
  | { name: string; type: 'fifo' }
  /** A pax header naming the entry `paxPath` while its plain header says `name`. */
  | { name: string; data: Buffer | string; type: 'pax-file'; paxPath: string };

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** A tar of exactly these entries, in this order. */
export function craftTar(entries: CraftEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    switch (e.type) {
      case 'dir':
        parts.push(tarEntry({ name: e.name, typeflag: '5', mode: 0o755 }));
        break;
      case 'symlink':
      case 'hardlink':
        parts.push(tarEntry({ name: e.name, typeflag: e.type === 'symlink' ? '2' : '1', linkname: e.target, mode: 0o777 }));
        break;
      case 'fifo':
        parts.push(tarEntry({ name: e.name, typeflag: '6' }));
        break;
      case 'pax-file':
        parts.push(tarEntry({ name: 'PaxHeaders/x', typeflag: 'x' }, paxBody({ path: e.paxPath })));
        parts.push(tarEntry({ name: e.name }, Buffer.from(e.data)));
        break;
      default:
        parts.push(tarEntry({ name: e.name }, Buffer.from(e.data)));
    }
  }
  parts.push(tarEnd());
  return Buffer.concat(parts);
}

/** A layer: a tiny tar holding one file. */
export function craftLayer(fileName: string, content: string): Buffer {
  return craftTar([{ name: fileName, data: content }]);
}

export interface CraftedImage {
  /** The archive's entries; edit them, then craftTar(). */
  entries: CraftEntry[];
  configDigest: string;
  diffIds: string[];
  config: Record<string, unknown>;
}

export interface CraftOptions {
  ref?: string;
  /** Layer contents; the same content twice makes docker save write a link (legacy). */
  layers?: Buffer[];
  cmd?: string[];
}

function configFor(layers: Buffer[], cmd: string[]): Record<string, unknown> {
  return {
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/bin'], Cmd: cmd },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${sha(l)}`) },
  };
}

/**
 * What Docker ≤ 24 (classic store) writes: <id>/{VERSION,json,layer.tar}, <config>.json,
 * manifest.json, repositories; a repeated layer is a link ../<first id>/layer.tar.
 */
export function legacyImage(opts: CraftOptions = {}): CraftedImage {
  const layers = opts.layers ?? [craftLayer('hello.txt', 'hello\n')];
  const config = configFor(layers, opts.cmd ?? ['/bin/true']);
  const configBytes = JSON.stringify(config);
  const configHex = sha(configBytes);
  const entries: CraftEntry[] = [];
  const firstDirOf = new Map<string, string>();
  const layerPaths: string[] = [];
  layers.forEach((layer, i) => {
    const dir = sha(`${configHex}/${i}`); // a v1 ID: any distinct hex per layer
    entries.push({ name: `${dir}/`, type: 'dir' }, { name: `${dir}/VERSION`, data: '1.0' }, { name: `${dir}/json`, data: '{}' });
    const first = firstDirOf.get(sha(layer));
    if (first) entries.push({ name: `${dir}/layer.tar`, type: 'symlink', target: `../${first}/layer.tar` });
    else {
      entries.push({ name: `${dir}/layer.tar`, data: layer });
      firstDirOf.set(sha(layer), dir);
    }
    layerPaths.push(`${dir}/layer.tar`);
  });
  entries.push({ name: `${configHex}.json`, data: configBytes });
  const tags = opts.ref ? [opts.ref] : null;
  entries.push({ name: 'manifest.json', data: JSON.stringify([{ Config: `${configHex}.json`, RepoTags: tags, Layers: layerPaths }]) });
  entries.push({ name: 'repositories', data: '{}' });
  return { entries, configDigest: `sha256:${configHex}`, diffIds: (config.rootfs as { diff_ids: string[] }).diff_ids, config };
}

/**
 * What Docker 25+ writes (both stores): blobs/sha256/<digest> for layers, config and
 * manifest, index.json naming the manifest, manifest.json, oci-layout.
 */
export function ociImage(opts: CraftOptions = {}): CraftedImage {
  const layers = opts.layers ?? [craftLayer('hello.txt', 'hello\n')];
  const config = configFor(layers, opts.cmd ?? ['/bin/true']);
  const configBytes = JSON.stringify(config);
  const configHex = sha(configBytes);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configHex}`, size: configBytes.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${sha(l)}`, size: l.length })),
  });
  const manifestHex = sha(manifest);
  const ref = opts.ref;
  const annotations = ref ? { 'io.containerd.image.name': fullName(ref), 'org.opencontainers.image.ref.name': ref.slice(ref.lastIndexOf(':') + 1) } : undefined;
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${manifestHex}`, size: manifest.length, ...(annotations ? { annotations } : {}) }],
  });
  const blobs = new Map<string, Buffer | string>();
  for (const l of layers) blobs.set(sha(l), l);
  blobs.set(configHex, configBytes);
  blobs.set(manifestHex, manifest);
  const entries: CraftEntry[] = [{ name: 'blobs/', type: 'dir' }, { name: 'blobs/sha256/', type: 'dir' }];
  for (const hex of [...blobs.keys()].sort()) entries.push({ name: `blobs/sha256/${hex}`, data: blobs.get(hex)! });
  entries.push({ name: 'index.json', data: index });
  entries.push({
    name: 'manifest.json',
    data: JSON.stringify([{ Config: `blobs/sha256/${configHex}`, RepoTags: ref ? [ref] : null, Layers: layers.map((l) => `blobs/sha256/${sha(l)}`) }]),
  });
  entries.push({ name: 'oci-layout', data: '{"imageLayoutVersion": "1.0.0"}' });
  return { entries, configDigest: `sha256:${configHex}`, diffIds: (config.rootfs as { diff_ids: string[] }).diff_ids, config };
}

function fullName(ref: string): string {
  const slash = ref.indexOf('/');
  const first = slash < 0 ? '' : ref.slice(0, slash);
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost')) return ref;
  return slash < 0 ? `docker.io/library/${ref}` : `docker.io/${ref}`;
}

/**
 * Two legacy images in one archive: manifest.json lists both (the second tagged `otherRef`),
 * the shape of an archive that would move someone else's tag on load.
 */
export function twoImageLegacyArchive(ref: string, otherRef: string): Buffer {
  const a = legacyImage({ ref, layers: [craftLayer('a.txt', `a ${ref}\n`)] });
  const b = legacyImage({ ref: otherRef, layers: [craftLayer('b.txt', `b ${otherRef}\n`)], cmd: ['/bin/false'] });
  const manifests = [a, b].map((img) => JSON.parse(String((img.entries.find((e) => e.name === 'manifest.json') as { data: string }).data))[0]);
  const body = (img: CraftedImage) => img.entries.filter((e) => e.name !== 'manifest.json' && e.name !== 'repositories');
  return craftTar([...body(a), ...body(b), { name: 'manifest.json', data: JSON.stringify(manifests) }]);
}

export const dataOf = (img: CraftedImage, name: string): string => String((img.entries.find((e) => e.name === name) as { data: string }).data);

/**
 * Several images in one archive, as `docker save a b c` writes them: each image's files once
 * (a blob two images share, once), one manifest.json listing them all in this order and, for
 * the OCI layout, one index.json naming each. All images must be of one layout.
 */
export function multiImageArchive(images: CraftedImage[]): Buffer {
  return craftTar(multiImageEntries(images));
}

/** The entries of multiImageArchive, to edit before craftTar(). */
export function multiImageEntries(images: CraftedImage[]): CraftEntry[] {
  const oci = images[0]!.entries.some((e) => e.name === 'index.json');
  const shared = new Set(['manifest.json', 'repositories', 'index.json', 'oci-layout']);
  const seen = new Set<string>();
  const body: CraftEntry[] = [];
  for (const img of images) {
    for (const e of img.entries) {
      if (shared.has(e.name) || seen.has(e.name)) continue;
      seen.add(e.name);
      body.push(e);
    }
  }
  const manifests = images.flatMap((img) => JSON.parse(dataOf(img, 'manifest.json')) as unknown[]);
  body.push({ name: 'manifest.json', data: JSON.stringify(manifests) });
  if (oci) {
    const descriptors = images.flatMap((img) => (JSON.parse(dataOf(img, 'index.json')) as { manifests: unknown[] }).manifests);
    body.push({ name: 'index.json', data: JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: descriptors }) });
    body.push({ name: 'oci-layout', data: '{"imageLayoutVersion": "1.0.0"}' });
  } else {
    body.push({ name: 'repositories', data: '{}' });
  }
  return body;
}
