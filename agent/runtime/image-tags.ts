// Image references on the engine: what a reference resolves to, a snapshot of every tag, and
// putting tags back after a load moved or added some.
import { dockerError, statusOf, type Docker } from './docker-client.js';

/** The image ID (sha256:…) a reference resolves to, or undefined when there is none. */
export async function imageIdOf(docker: Docker, ref: string): Promise<string | undefined> {
  try {
    const info = await docker.getImage(ref).inspect();
    return info.Id;
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw dockerError(err, `inspecting image ${ref}`);
  }
}

/** Every tag the engine knows, as reference → image ID. */
export async function snapshotTags(docker: Docker): Promise<Map<string, string>> {
  let images: Docker.ImageInfo[];
  try {
    images = await docker.listImages({ all: false });
  } catch (err) {
    throw dockerError(err, 'listing images');
  }
  const tags = new Map<string, string>();
  for (const image of images) {
    for (const ref of image.RepoTags ?? []) {
      if (ref === '<none>:<none>') continue;
      tags.set(ref, image.Id);
    }
  }
  return tags;
}

export interface TagChanges {
  /** Tags that pointed elsewhere before and were put back. */
  restored: string[];
  /** Tags that did not exist before and were removed. */
  removed: string[];
  /** Tags that existed before and vanished (they cannot be recreated if the image went away). */
  missing: string[];
}

/** Compare two snapshots: tags that moved, tags that are new, tags that vanished. */
export function diffTags(before: Map<string, string>, after: Map<string, string>, allowed: Iterable<string> = []): TagChanges {
  const allow = new Set(allowed);
  const changes: TagChanges = { restored: [], removed: [], missing: [] };
  for (const [ref, id] of after) {
    if (allow.has(ref)) continue;
    const old = before.get(ref);
    if (old === undefined) changes.removed.push(ref);
    else if (old !== id) changes.restored.push(ref);
  }
  for (const ref of before.keys()) {
    if (!allow.has(ref) && !after.has(ref)) changes.missing.push(ref);
  }
  return changes;
}

/**
 * Undo what a load did to the tags, except for the allowed references: put moved tags back
 * on their previous image, remove tags that are new, re-create vanished tags when their
 * image is still there. `after` defaults to a fresh snapshot. Returns what was changed.
 */
export async function restoreTags(
  docker: Docker,
  before: Map<string, string>,
  after?: Map<string, string>,
  allowed: Iterable<string> = [],
): Promise<TagChanges> {
  const now = after ?? (await snapshotTags(docker));
  const changes = diffTags(before, now, allowed);
  for (const ref of [...changes.restored, ...changes.missing]) {
    const id = before.get(ref)!;
    await tagImage(docker, id, ref);
  }
  for (const ref of changes.removed) {
    await untag(docker, ref);
  }
  return changes;
}

/** Point `ref` (repo:tag) at the image `idOrRef`. */
export async function tagImage(docker: Docker, idOrRef: string, ref: string): Promise<void> {
  const { repo, tag } = splitRef(ref);
  try {
    await docker.getImage(idOrRef).tag({ repo, tag });
  } catch (err) {
    throw dockerError(err, `tagging ${idOrRef} as ${ref}`);
  }
}

/** Remove one tag without pruning parents; an image a container still uses keeps existing. */
async function untag(docker: Docker, ref: string): Promise<void> {
  try {
    await docker.getImage(ref).remove({ noprune: true });
  } catch (err) {
    if (statusOf(err) === 404) return;
    if (statusOf(err) === 409) {
      // in use by a container: forcing a *reference* only drops the tag, the image stays
      try {
        await docker.getImage(ref).remove({ force: true, noprune: true });
        return;
      } catch (err2) {
        if (statusOf(err2) === 404) return;
        throw dockerError(err2, `removing tag ${ref}`);
      }
    }
    throw dockerError(err, `removing tag ${ref}`);
  }
}

/** "registry:5000/a/b:tag" → { repo: "registry:5000/a/b", tag: "tag" } (tag defaults to latest). */
export function splitRef(ref: string): { repo: string; tag: string } {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: 'latest' };
}
