// Import the staged image and prove it is exactly the one in the package: the manifest's
// reference must point at the image image.tar pins (its config digest on the classic store;
// its layers, platform and settings on the containerd store, whose IDs are manifest digests:
// judgeLoadedImage), and no other tag on the engine may have moved. The tag state before the
// load is journaled first, so a rejection, a rollback or a restart after a crash can put
// every tag back where it was.
import { CaissonError, toCaissonError } from '../errors.js';
import { judgeLoadedImage, type ImageArchiveInfo, type LoadedImage } from '../package/image-archive.js';
import type { Engine, LoadProgressEvent } from '../runtime/engine.js';

/** reference → image ID, for every tagged image. JSON-serialisable for the journal. */
export type TagSnapshot = Record<string, string>;

/** How long to wait for an engine that went away mid-import before giving up. */
const ENGINE_WAIT_MS = 60_000;

export async function snapshotImageTags(engine: Engine): Promise<TagSnapshot> {
  return Object.fromEntries(await engine.tags());
}

/** One image the archive must bring: the reference it must tag and what the archive pins for it. */
export interface ImportTarget {
  reference: string;
  /** What image.tar pins for it, read while staging (undefined when it could not be read, e.g. some image.tar.gz). */
  expected?: ImageArchiveInfo | undefined;
}

interface ImportCommon {
  imagePath: string;
  /** Called with the tag snapshot before the engine is touched; must save it durably. */
  beforeLoad: (tagsBefore: TagSnapshot) => void;
  onProgress?: (done: number, total: number) => void;
  /**
   * The engine has the whole archive and is unpacking it; imagePath is not read again, not
   * even by a retry (the caller may remove it).
   */
  onUploaded?: () => void;
  /** The engine's own progress: bytes of the layer it is unpacking now. */
  onUnpack?: (layer: string, done: number, total: number) => void;
}

export interface ImportOptions extends ImportCommon {
  reference: string;
  /** What image.tar pins (undefined when it could not be read, e.g. some image.tar.gz). */
  expectedImage?: ImageArchiveInfo | undefined;
  /** Called with the ID the reference points at after the load, before it is judged. */
  afterLoad?: (loadedImageId: string) => void;
}

export interface ImportManyOptions extends ImportCommon {
  /** Every image the archive must bring (a stack package: one per service). */
  images: readonly ImportTarget[];
  /** Called with reference → loaded ID after the load, before the images are judged. */
  afterLoad?: (loaded: Record<string, string>) => void;
}

/** Import an archive holding one image (a service package). */
export async function importImage(engine: Engine, opts: ImportOptions): Promise<string> {
  const { reference, expectedImage, afterLoad, ...common } = opts;
  const loaded = await importImages(engine, {
    ...common,
    images: [{ reference, expected: expectedImage }],
    afterLoad: afterLoad && ((ids) => afterLoad(ids[reference]!)),
  });
  return loaded[reference]!;
}

/**
 * Import an archive and prove it brought exactly the images listed: each reference points
 * at the image the archive pins for it, and no other tag moved. Returns reference → ID.
 */
export async function importImages(engine: Engine, opts: ImportManyOptions): Promise<Record<string, string>> {
  const tagsBefore = await snapshotImageTags(engine);
  opts.beforeLoad(tagsBefore);
  let uploaded = false;
  const onUploaded = () => {
    uploaded = true;
    opts.onUploaded?.();
  };
  // the engine may report a layer's end more than once: pass it on once
  const unpacked = new Set<string>();
  const onProgress = (e: LoadProgressEvent) => {
    const { current, total } = e.progressDetail ?? {};
    if (e.status !== 'Loading layer' || typeof current !== 'number' || typeof total !== 'number' || total <= 0) return;
    const layer = e.id ?? '';
    if (unpacked.has(layer)) return;
    if (current >= total) unpacked.add(layer);
    opts.onUnpack?.(layer, current, total);
  };
  const load = { onBytes: opts.onProgress, onUploaded, onProgress };
  let tagsAfter: TagSnapshot;
  try {
    try {
      await engine.loadImage(opts.imagePath, load);
    } catch (err) {
      const error = toCaissonError(err, 'docker.load_failed');
      // once uploaded, the archive may be gone: the update is refused (service untouched)
      if (error.code !== 'docker.unreachable' || uploaded) throw error;
      // the engine went away during the upload: wait for it (bounded), then import once more
      await engine.ping({ waitMs: ENGINE_WAIT_MS });
      await engine.loadImage(opts.imagePath, load);
    }
    tagsAfter = await snapshotImageTags(engine);
  } catch (err) {
    await undoFailedLoad(engine, tagsBefore, opts.images.map((i) => i.reference));
    throw err;
  }
  const loaded: Record<string, string> = {};
  for (const { reference } of opts.images) if (tagsAfter[reference]) loaded[reference] = tagsAfter[reference];
  if (Object.keys(loaded).length > 0) opts.afterLoad?.(loaded);
  const missing = opts.images.find((i) => !loaded[i.reference]);
  if (missing) {
    throw new CaissonError('image.reference_mismatch', `after import, ${missing.reference} does not exist: image.tar holds another image`);
  }
  const mine = new Set(opts.images.map((i) => i.reference));
  const moved = movedTags(tagsBefore, tagsAfter).filter((ref) => !mine.has(ref));
  if (moved.length > 0) {
    const allowed = [...mine].join(', ');
    throw new CaissonError('image.tag_moved', `the import also changed ${moved.slice(0, 10).join(', ')}${moved.length > 10 ? ', …' : ''}; only ${allowed} may change`);
  }
  for (const { reference, expected } of opts.images) {
    if (!expected) continue;
    const loadedId = loaded[reference]!;
    const why = judgeLoadedImage(await inspectLoaded(engine, loadedId), expected);
    if (why) throw new CaissonError('image.id_mismatch', `${reference} is ${short(loadedId)} after import, not the image image.tar holds (${short(expected.imageId)}): ${why}`);
  }
  return loaded;
}

/**
 * A load that failed may still have tagged what it brought: an engine that goes away after
 * the upload (a dockerd restart) may finish the load while it shuts down. Wait for the
 * engine (bounded) and put every tag back, so that a refused update leaves the tags as they
 * were; if the engine stays away, the caller's clean-up and recovery try again.
 */
async function undoFailedLoad(engine: Engine, tagsBefore: TagSnapshot, references: readonly string[]): Promise<void> {
  try {
    await engine.ping({ waitMs: ENGINE_WAIT_MS });
    await restoreImageTags(engine, tagsBefore, [], references);
  } catch {
    // left to the caller (discard) and to recovery
  }
}

async function inspectLoaded(engine: Engine, id: string): Promise<LoadedImage> {
  const image = await engine.image(id);
  if (!image) throw new CaissonError('image.reference_mismatch', `the loaded image ${short(id)} vanished right after the import`);
  return image as unknown as LoadedImage;
}

/**
 * Every tag that changed between two snapshots: moved to another image, new, or gone. A load
 * only ever adds or moves tags; anything else changing during one is refused just the same.
 */
export function movedTags(before: TagSnapshot, after: TagSnapshot): string[] {
  const refs = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...refs].filter((ref) => before[ref] !== after[ref]).sort();
}

/**
 * Undo what an import did to tags, and nothing else: tags that now point at an image the
 * import brought (loadedIds, whatever `reference` points at if it moved, and any image no
 * tag named before: a second image inside the archive) but did not before go back to
 * their previous image, or are removed if they did not exist (an unused image left without
 * tags is deleted by the engine). Tags moved onto images that were tagged before are left
 * alone. A stack passes every reference it imported. Idempotent, so recovery may call it again.
 */
export async function restoreImageTags(engine: Engine, before: TagSnapshot, loadedIds: string[], reference?: string | readonly string[]): Promise<void> {
  const after = await engine.tags();
  const known = new Set(Object.values(before));
  const ids = new Set([...loadedIds, ...[...after.values()].filter((id) => !known.has(id))]);
  for (const ref of typeof reference === 'string' ? [reference] : (reference ?? [])) {
    const current = after.get(ref);
    if (current && before[ref] !== current) ids.add(current);
  }
  const scope = [...after].filter(([ref, id]) => ids.has(id) && before[ref] !== id).map(([ref]) => ref);
  if (scope.length === 0) return;
  const scopedBefore = new Map(scope.filter((ref) => before[ref]).map((ref) => [ref, before[ref]!]));
  const scopedAfter = new Map(scope.map((ref) => [ref, after.get(ref)!]));
  await engine.restoreTags(scopedBefore, scopedAfter);
}

function short(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}
