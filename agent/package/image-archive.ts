// The docker-save archive inside a package (image.tar), read as it streams by.
//
// Only the layouts `docker save` writes are accepted, spelled exactly as it spells them:
//   legacy (Docker ≤ 24 classic store): <id>/ <id>/VERSION <id>/json <id>/layer.tar <config>.json
//     manifest.json repositories, where a layer saved twice is a link <id>/layer.tar ->
//     ../<other id>/layer.tar
//   OCI (Docker 25+, both image stores): blobs/ blobs/sha256/ blobs/sha256/<digest> index.json
//     manifest.json oci-layout [repositories]
// Every name appears once; no other name, no other link, no "./", "..", "//" or re-spelling
// (the engine would read `x/../manifest.json` or a link `manifest.json -> evil.json` as
// manifest.json, not the one checked here).
//
// What the archive pins is read from it: the config (its digest is computed here, not taken
// from its name), the layers' diff IDs and platform from that config, the tags from
// manifest.json and, for OCI, the names index.json gives. The engine's image ID is not
// predictable from the archive on every store (the containerd store uses a manifest digest,
// one it generates itself for a legacy archive), so the loaded image is judged against
// these pins (`judgeLoadedImage`), not against an ID.
import { createHash } from 'node:crypto';
import { describe } from '../errors.js';
import { TarParser, type TarEntry } from './tar-parser.js';

/** Largest JSON document (manifest.json, index.json, a config or manifest blob) read. */
export const MAX_ARCHIVE_JSON = 1024 * 1024;
/** Most bytes of small files kept in memory while the archive streams by. */
const MAX_KEPT_BYTES = 16 * 1024 * 1024;
/** Most entries in one archive (a layer is 1–4 entries). */
const MAX_ENTRIES = 4096;
/** Most images one archive may hold (a stack package's limit; a service package holds one). */
export const MAX_IMAGES = 16;

export type ImageArchiveLayout = 'legacy' | 'oci';

/** Runtime settings of an image that the engine reports in `docker image inspect` (.Config). */
export type ImageRuntimeConfig = Record<string, unknown>;

/** One image of a docker-save archive, as the archive pins it. */
export interface ImageArchiveInfo {
  /** Digest of the image config (sha256:<hex>), computed from its bytes; the image ID on the classic store. */
  imageId: string;
  /** RepoTags listed in the archive's manifest.json (what `docker load` will tag). */
  repoTags: string[];
  layout: ImageArchiveLayout;
  /** The config's rootfs.diff_ids, in order: the layers' content, as every store reports it (RootFS.Layers). */
  diffIds: string[];
  os: string;
  architecture: string;
  variant?: string;
  /** The config's `config` object (Cmd, Env, …), null when it has none. */
  runtimeConfig: ImageRuntimeConfig | null;
  /** OCI: names index.json gives this image's manifests (io.containerd.image.name), which the containerd store tags. */
  indexNames: string[];
}

export interface InspectResult {
  /** Every image the archive holds, in manifest.json's order (at least one). */
  images?: ImageArchiveInfo[];
  problem?: string;
}

const HEX = '[0-9a-f]{64}';
type Kind = 'file' | 'directory' | 'symlink';
interface NameRule {
  re: RegExp;
  kinds: Kind[];
  layout?: ImageArchiveLayout;
}
const RULES: NameRule[] = [
  { re: /^(?:manifest\.json|repositories)$/, kinds: ['file'] },
  { re: new RegExp(`^${HEX}/$`), kinds: ['directory'], layout: 'legacy' },
  { re: new RegExp(`^${HEX}/(?:VERSION|json)$`), kinds: ['file'], layout: 'legacy' },
  { re: new RegExp(`^${HEX}/layer\\.tar$`), kinds: ['file', 'symlink'], layout: 'legacy' },
  { re: new RegExp(`^${HEX}\\.json$`), kinds: ['file'], layout: 'legacy' },
  { re: /^(?:blobs\/|blobs\/sha256\/)$/, kinds: ['directory'], layout: 'oci' },
  { re: new RegExp(`^blobs/sha256/${HEX}$`), kinds: ['file'], layout: 'oci' },
  { re: /^(?:index\.json|oci-layout)$/, kinds: ['file'], layout: 'oci' },
];
/** The only link docker save writes: a repeated legacy layer pointing at its first copy. */
const LINK_TARGET = new RegExp(`^\\.\\./(${HEX}/layer\\.tar)$`);

/**
 * Reads a docker-save archive chunk by chunk; never throws from write(): a broken or
 * non-conforming archive yields a `problem`. Memory: small files only, bounded.
 */
export class ImageArchiveReader {
  private readonly parser = new TarParser({ strict: false });
  private problem: string | undefined;
  private readonly kinds = new Map<string, Kind>();
  private readonly links = new Map<string, string>();
  private readonly kept = new Map<string, Buffer>();
  private keptBytes = 0;
  private keeping: { path: string; chunks: Buffer[]; size: number } | undefined;
  private readonly layouts = new Set<ImageArchiveLayout>();

  write(data: Buffer): void {
    if (this.problem) return;
    try {
      for (const ev of this.parser.feed(data)) {
        if (ev.kind === 'entry') this.onEntry(ev.entry);
        else if (ev.kind === 'data') {
          if (this.keeping) {
            this.keeping.chunks.push(Buffer.from(ev.data));
            this.keeping.size += ev.data.length;
          }
        } else if (this.keeping) {
          this.kept.set(this.keeping.path, Buffer.concat(this.keeping.chunks, this.keeping.size));
          this.keeping = undefined;
        }
      }
    } catch (err) {
      this.fail(err instanceof ArchiveProblem ? err.message : `it is not a valid docker save archive (${describe(err)})`);
    }
  }

  /** Sets a problem from outside (a broken gzip stream around the archive). */
  fail(problem: string): void {
    this.problem ??= problem;
  }

  get failed(): boolean {
    return this.problem !== undefined;
  }

  finish(): InspectResult {
    if (!this.problem) {
      try {
        this.parser.end();
      } catch (err) {
        this.fail(`it is not a complete tar archive (${describe(err)})`);
      }
    }
    if (this.problem) return { problem: this.problem };
    try {
      return { images: this.analyse() };
    } catch (err) {
      return { problem: err instanceof ArchiveProblem ? err.message : describe(err) };
    }
  }

  private onEntry(e: TarEntry): void {
    if (this.kinds.size >= MAX_ENTRIES) throw new ArchiveProblem(`it has more than ${MAX_ENTRIES} entries`);
    for (const alt of [e.paxPath, e.gnuLongName]) {
      if (alt !== undefined && alt !== e.headerPath) throw new ArchiveProblem(`its entry "${show(e.headerPath)}" names itself "${show(alt)}" as well`);
    }
    const path = e.path;
    const kind: Kind | undefined = e.type === 'file' ? 'file' : e.type === 'directory' ? 'directory' : e.type === 'symlink' ? 'symlink' : undefined;
    const rule = RULES.find((r) => r.re.test(path));
    if (!rule) throw new ArchiveProblem(`it holds "${show(path)}", which docker save does not write`);
    if (!kind || !rule.kinds.includes(kind)) {
      throw new ArchiveProblem(`its entry "${show(path)}" is a ${e.type === 'symlink' ? 'link' : e.type}, which docker save does not write there`);
    }
    if (this.kinds.has(path)) throw new ArchiveProblem(`"${show(path)}" appears twice`);
    this.kinds.set(path, kind);
    if (rule.layout) this.layouts.add(rule.layout);
    if (kind === 'symlink') {
      const m = LINK_TARGET.exec(e.linkpath);
      if (!m || m[1] === path) throw new ArchiveProblem(`its link "${show(path)}" points at "${show(e.linkpath)}"; only ../<layer>/layer.tar is allowed`);
      this.links.set(path, m[1]!);
    } else if (kind === 'file' && e.size <= MAX_ARCHIVE_JSON && this.keptBytes + e.size <= MAX_KEPT_BYTES) {
      this.keptBytes += e.size;
      this.keeping = { path, chunks: [], size: 0 };
    } else if (kind === 'file' && (path === 'manifest.json' || path === 'index.json')) {
      throw new ArchiveProblem(`its ${path} is ${e.size} bytes (limit ${MAX_ARCHIVE_JSON})`);
    }
  }

  private analyse(): ImageArchiveInfo[] {
    if (this.layouts.size > 1) throw new ArchiveProblem('it mixes the legacy and the OCI layout, which docker save never does');
    const layout: ImageArchiveLayout = this.layouts.has('oci') ? 'oci' : 'legacy';
    if (layout === 'oci' && !this.kinds.has('index.json')) throw new ArchiveProblem('its OCI layout has no index.json');
    for (const [link, target] of this.links) {
      if (this.kinds.get(target) !== 'file') throw new ArchiveProblem(`its link "${show(link)}" points at "${show(target)}", which is not a layer in it`);
    }
    const manifestJson = this.kept.get('manifest.json');
    if (!manifestJson) throw new ArchiveProblem('it has no manifest.json (not a docker save archive)');
    const images = parseManifestJson(manifestJson).map((entry) => ({ ...this.readImage(entry), layout }));
    checkDistinct(images);
    const names = layout === 'oci' ? this.readIndex(images.map((i) => ({ imageId: i.imageId, platform: imagePlatform(i) }))) : new Map<string, string[]>();
    return images.map((img) => ({ ...img, indexNames: names.get(img.imageId) ?? [] }));
  }

  /** One image manifest.json lists: its config, read from the archive and hashed here. */
  private readImage(entry: ManifestJsonEntry): Omit<ImageArchiveInfo, 'layout' | 'indexNames'> {
    const config = this.kept.get(entry.config);
    if (!config) throw new ArchiveProblem(`its manifest.json names the config "${show(entry.config)}", which is not in it`);
    const configHex = createHash('sha256').update(config).digest('hex');
    if (!entry.config.includes(configHex)) throw new ArchiveProblem(`its config "${show(entry.config)}" does not have that digest (it is sha256:${configHex})`);
    for (const layer of entry.layers) {
      const k = this.kinds.get(layer);
      if (k !== 'file' && k !== 'symlink') throw new ArchiveProblem(`its manifest.json names the layer "${show(layer)}", which is not in it`);
    }
    const parsed = parseConfig(config);
    if (parsed.diffIds.length !== entry.layers.length) {
      throw new ArchiveProblem(`its config sha256:${configHex.slice(0, 12)} lists ${parsed.diffIds.length} layers but manifest.json ${entry.layers.length}`);
    }
    return { imageId: `sha256:${configHex}`, repoTags: entry.repoTags, ...parsed };
  }

  /**
   * The names index.json gives each image (by config digest), after checking the images it
   * leads to (through nested indexes, for the blobs the archive holds): every image
   * manifest.json lists must be among them, for the platform its config says. Any other is
   * another platform's image of a multi-platform index, which an engine never runs here:
   * the containerd store picks the device's platform (judgeLoadedImage then proves it is the
   * pinned config's image), the classic store loads what manifest.json names. An image for
   * the platform of a listed one that manifest.json does not list is refused.
   */
  private readIndex(images: ReadonlyArray<{ imageId: string; platform: string }>): Map<string, string[]> {
    const index = parseJson(this.kept.get('index.json'), 'index.json') as { manifests?: unknown };
    if (!Array.isArray(index?.manifests)) throw new ArchiveProblem('its index.json lists no manifests');
    const configs = images.map((i) => i.imageId);
    const platformOfConfig = new Map(images.map((i) => [i.imageId, i.platform]));
    const reached = new Set<string>();
    // the listed configs one descriptor leads to
    const visit = (descriptors: unknown[], depth: number, found: Set<string>): void => {
      if (depth > 4) throw new ArchiveProblem('its index.json nests indexes too deeply');
      for (const d of descriptors as Descriptor[]) {
        const m = typeof d?.digest === 'string' ? /^sha256:([0-9a-f]{64})$/.exec(d.digest) : null;
        if (!m) throw new ArchiveProblem('its index.json has a manifest without a sha256 digest');
        const blob = this.kept.get(`blobs/sha256/${m[1]}`);
        if (!blob) continue; // another platform's manifest, not saved
        if (createHash('sha256').update(blob).digest('hex') !== m[1]) throw new ArchiveProblem(`its blob sha256:${m[1]!.slice(0, 12)} does not have that digest`);
        const doc = parseJson(blob, `manifest ${m[1]!.slice(0, 12)}`) as { manifests?: unknown; config?: { digest?: unknown } };
        if (Array.isArray(doc?.manifests)) {
          visit(doc.manifests, depth + 1, found);
          continue;
        }
        if (doc?.config?.digest === undefined) continue;
        const config = String(doc.config.digest);
        const declared = platformOf(d.platform);
        const platform = platformOfConfig.get(config);
        if (platform !== undefined) {
          if (declared !== undefined && !samePlatform(declared, platform)) throw new ArchiveProblem(`its index.json lists the image for ${show(declared)}, but its config is for ${platform} (config ${config.slice(0, 19)})`);
          found.add(config);
        } else if (declared === undefined || images.some((i) => samePlatform(declared, i.platform))) {
          throw new ArchiveProblem(`its index.json leads to a second image for ${declared ? show(declared) : 'no platform'} (config ${config.slice(0, 19)}) that manifest.json does not list`);
        }
      }
    };
    const names = new Map<string, string[]>(configs.map((c) => [c, []]));
    for (const d of index.manifests as Descriptor[]) {
      const found = new Set<string>();
      visit([d], 0, found);
      found.forEach((c) => reached.add(c));
      const name = d?.annotations?.['io.containerd.image.name'];
      if (name === undefined) continue;
      if (typeof name !== 'string') throw new ArchiveProblem('its index.json has a malformed image name');
      // a name whose manifest was not saved: with one image it can only be that image's
      // (as docker save writes it); with several, nobody can tell whose
      const owners = found.size ? [...found] : configs.length === 1 ? configs : [];
      if (owners.length === 0) throw new ArchiveProblem(`its index.json names ${JSON.stringify(show(name))} but leads to no image in it`);
      for (const c of owners) names.get(c)!.push(name);
    }
    const missing = configs.find((c) => !reached.has(c));
    if (missing !== undefined) {
      throw new ArchiveProblem(configs.length === 1 ? 'its index.json leads to no image manifest in it' : `its index.json leads to no manifest of the image ${missing.slice(0, 19)}`);
    }
    return names;
  }
}

interface Descriptor {
  digest?: unknown;
  platform?: unknown;
  annotations?: Record<string, unknown>;
}

/** os/architecture[/variant] of an index entry's platform field, undefined when it has none. */
function platformOf(p: unknown): string | undefined {
  if (p === undefined || p === null) return undefined;
  const { os, architecture, variant } = p as { os?: unknown; architecture?: unknown; variant?: unknown };
  if (typeof os !== 'string' || typeof architecture !== 'string' || (variant !== undefined && typeof variant !== 'string')) {
    throw new ArchiveProblem('its index.json has a malformed platform');
  }
  return [os, architecture, variant].filter(Boolean).join('/');
}

/** os and architecture equal, and the variant too where both name one (arm64 configs often omit v8). */
export function samePlatform(a: string, b: string): boolean {
  const [x, y] = [a.split('/'), b.split('/')];
  return x[0] === y[0] && x[1] === y[1] && (x[2] === undefined || y[2] === undefined || x[2] === y[2]);
}

/** The platform an image config is for, spelled os/architecture[/variant]. */
export function imagePlatform(info: Pick<ImageArchiveInfo, 'os' | 'architecture' | 'variant'>): string {
  return [info.os, info.architecture, info.variant].filter(Boolean).join('/');
}

/** Each image once, each tag on one image: `docker load` would give a tag to whichever came last. */
function checkDistinct(images: Array<{ imageId: string; repoTags: string[] }>): void {
  const ids = new Set<string>();
  const tags = new Set<string>();
  for (const img of images) {
    if (ids.has(img.imageId)) throw new ArchiveProblem(`its manifest.json lists the image ${img.imageId.slice(0, 19)} twice`);
    ids.add(img.imageId);
    for (const tag of img.repoTags) {
      if (tags.has(tag)) throw new ArchiveProblem(`its manifest.json gives the tag ${JSON.stringify(show(tag))} to two images`);
      tags.add(tag);
    }
  }
}

class ArchiveProblem extends Error {}

function parseJson(bytes: Buffer | undefined, what: string): unknown {
  if (!bytes) throw new ArchiveProblem(`its ${what} is missing or too large`);
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ArchiveProblem(`its ${what} is not JSON`);
  }
}

interface ManifestJsonEntry {
  config: string;
  layers: string[];
  repoTags: string[];
}

function parseManifestJson(bytes: Buffer): ManifestJsonEntry[] {
  const doc = parseJson(bytes, 'manifest.json');
  if (!Array.isArray(doc)) throw new ArchiveProblem('its manifest.json is not a list');
  if (doc.length === 0) throw new ArchiveProblem('its manifest.json lists no image');
  if (doc.length > MAX_IMAGES) throw new ArchiveProblem(`it holds ${doc.length} images (limit ${MAX_IMAGES})`);
  return doc.map((e) => parseManifestJsonEntry(e));
}

function parseManifestJsonEntry(e: unknown): ManifestJsonEntry {
  const entry = e as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
  if (typeof entry?.Config !== 'string' || !RULES.some((r) => r.kinds.includes('file') && r.re.test(entry.Config as string)) || !/[0-9a-f]{64}(\.json)?$/.test(entry.Config)) {
    throw new ArchiveProblem('its manifest.json names no image config');
  }
  const tags = entry.RepoTags ?? [];
  if (!Array.isArray(tags) || !tags.every((t): t is string => typeof t === 'string')) throw new ArchiveProblem('its manifest.json has malformed RepoTags');
  const layers = entry.Layers;
  if (!Array.isArray(layers) || !layers.every((l): l is string => typeof l === 'string')) throw new ArchiveProblem('its manifest.json has malformed Layers');
  return { config: entry.Config, layers, repoTags: tags };
}

function parseConfig(bytes: Buffer): Pick<ImageArchiveInfo, 'diffIds' | 'os' | 'architecture' | 'variant' | 'runtimeConfig'> {
  const doc = parseJson(bytes, 'image config') as {
    rootfs?: { type?: unknown; diff_ids?: unknown };
    os?: unknown;
    architecture?: unknown;
    variant?: unknown;
    config?: unknown;
  };
  const ids = doc?.rootfs?.diff_ids;
  if (doc?.rootfs?.type !== 'layers' || !Array.isArray(ids) || !ids.every((d): d is string => typeof d === 'string' && /^sha256:[0-9a-f]{64}$/.test(d))) {
    throw new ArchiveProblem('its image config has no valid rootfs.diff_ids');
  }
  if (typeof doc.os !== 'string' || typeof doc.architecture !== 'string') throw new ArchiveProblem('its image config names no platform');
  const cfg = doc.config;
  if (cfg !== undefined && cfg !== null && (typeof cfg !== 'object' || Array.isArray(cfg))) throw new ArchiveProblem('its image config has a malformed config');
  const out: Pick<ImageArchiveInfo, 'diffIds' | 'os' | 'architecture' | 'variant' | 'runtimeConfig'> = {
    diffIds: ids,
    os: doc.os,
    architecture: doc.architecture,
    runtimeConfig: (cfg as ImageRuntimeConfig | undefined) ?? null,
  };
  if (typeof doc.variant === 'string' && doc.variant) out.variant = doc.variant;
  return out;
}

/** The settings compared between the archive's config and what the engine reports. */
const RUNTIME_KEYS = ['Cmd', 'Entrypoint', 'Env', 'WorkingDir', 'User', 'ExposedPorts', 'Volumes', 'Labels', 'StopSignal', 'Healthcheck', 'Shell', 'OnBuild'];

/** What the engine reports for an image (`docker image inspect`), the parts judged here. */
export interface LoadedImage {
  Id: string;
  Os?: string;
  Architecture?: string;
  RootFS?: { Layers?: string[] };
  Config?: Record<string, unknown> | null;
}

/**
 * Is the image the engine holds the one the archive pinned? On the classic store its ID is
 * the config digest, which covers everything. Otherwise (the containerd store: the ID is a
 * manifest digest) the layers' diff IDs, the platform and the runtime settings must all be
 * the archive's. Returns why not, or undefined when it is.
 */
export function judgeLoadedImage(loaded: LoadedImage, pinned: ImageArchiveInfo): string | undefined {
  if (loaded.Id === pinned.imageId) return undefined;
  const layers = loaded.RootFS?.Layers ?? [];
  if (layers.length !== pinned.diffIds.length || layers.some((l, i) => l !== pinned.diffIds[i])) {
    return `its layers (${layers.length}) are not the ${pinned.diffIds.length} layers image.tar holds`;
  }
  if (loaded.Os !== pinned.os || loaded.Architecture !== pinned.architecture) {
    return `it is for ${loaded.Os}/${loaded.Architecture}, image.tar for ${pinned.os}/${pinned.architecture}`;
  }
  for (const key of RUNTIME_KEYS) {
    const a = normalise(loaded.Config?.[key]);
    const b = normalise(pinned.runtimeConfig?.[key]);
    if (JSON.stringify(a) !== JSON.stringify(b)) return `its ${key} is not the one image.tar holds`;
  }
  return undefined;
}

/** Empty and missing read alike; object keys in one order. */
function normalise(v: unknown): unknown {
  if (v === null || v === undefined || v === '') return undefined;
  if (Array.isArray(v)) return v.length ? v.map(normalise) : undefined;
  if (typeof v === 'object') {
    const keys = Object.keys(v as object).sort();
    if (keys.length === 0) return undefined;
    return Object.fromEntries(keys.map((k) => [k, normalise((v as Record<string, unknown>)[k])]));
  }
  return v;
}

function show(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f"\\]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`).slice(0, 120);
}
