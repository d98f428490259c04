// Import the staged image and prove it is exactly the one in the package: the manifest's
// reference must point at the image ID recorded in image.tar, and no other tag may have
// moved. The tag state before the load is journaled first, so a rejection, a rollback or
// a restart after a crash can put every tag back where it was.
import type Dockerode from 'dockerode';
import { CaissonError, toCaissonError } from '../errors.js';
import { loadImageFromFile, pingDocker, restoreTags, snapshotTags } from '../runtime/docker-client.js';

/** reference → image ID, for every tagged image. JSON-serialisable for the journal. */
export type TagSnapshot = Record<string, string>;

/** How long to wait for an engine that went away mid-import before giving up. */
const ENGINE_WAIT_MS = 60_000;

export async function snapshotImageTags(docker: Dockerode): Promise<TagSnapshot> {
  return Object.fromEntries(await snapshotTags(docker));
}

export interface ImportOptions {
  imagePath: string;
  reference: string;
  /** The image ID read from image.tar while staging (undefined for image.tar.gz). */
  expectedImageId?: string;
  /** Called with the tag snapshot before the engine is touched; must save it durably. */
  beforeLoad: (tagsBefore: TagSnapshot) => void;
  onProgress?: (done: number, total: number) => void;
}

export async function importImage(docker: Dockerode, opts: ImportOptions): Promise<string> {
  const tagsBefore = await snapshotImageTags(docker);
  opts.beforeLoad(tagsBefore);
  try {
    await loadImageFromFile(docker, opts.imagePath, { onBytes: opts.onProgress });
  } catch (err) {
    const error = toCaissonError(err, 'docker.load_failed');
    if (error.code !== 'docker.unreachable') throw error;
    // the engine went away mid-import: wait for it (bounded), then import once more
    await pingDocker(docker, { waitMs: ENGINE_WAIT_MS });
    await loadImageFromFile(docker, opts.imagePath, { onBytes: opts.onProgress });
  }
  const tagsAfter = await snapshotImageTags(docker);
  const loadedId = tagsAfter[opts.reference];
  if (!loadedId) {
    throw new CaissonError('image.reference_mismatch', `after import, ${opts.reference} does not exist: image.tar holds another image`);
  }
  if (opts.expectedImageId && loadedId !== opts.expectedImageId) {
    throw new CaissonError('image.id_mismatch', `${opts.reference} is ${short(loadedId)} after import, but image.tar holds ${short(opts.expectedImageId)}`);
  }
  const moved = movedTags(tagsBefore, tagsAfter, loadedId).filter((ref) => ref !== opts.reference);
  if (moved.length > 0) {
    throw new CaissonError('image.tag_moved', `the import also tagged ${moved.join(', ')}; only ${opts.reference} may change`);
  }
  return loadedId;
}

/** Tags that point at loadedId now but did not before the import. */
export function movedTags(before: TagSnapshot, after: TagSnapshot, loadedId: string): string[] {
  return Object.keys(after).filter((ref) => after[ref] === loadedId && before[ref] !== loadedId);
}

/**
 * Undo what an import did to tags: every tag that changed since the snapshot goes back to
 * its previous image, or is removed if it did not exist (an unused image left without
 * tags is deleted by the engine). Idempotent, so recovery may call it again.
 */
export async function restoreImageTags(docker: Dockerode, before: TagSnapshot): Promise<void> {
  await restoreTags(docker, new Map(Object.entries(before)));
}

function short(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}
