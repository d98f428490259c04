// image.tar.gz is opened only after it has been vouched for. Staging copies and hashes the
// compressed bytes without looking inside (reader.ts); validate.ts checks the signature and
// the manifest's pins first and only then calls inspectCompressedImage, so a gzip bomb on a
// device that requires signatures costs one hash over its compressed bytes and nothing more.
// Inflation is then bounded: a package whose signature verified may inflate up to the
// device's image limit; any other to at most `maxInflateRatio` times its compressed size
// (anyone can write pins into an unsigned manifest, so pins alone vouch for nothing).
import { createReadStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { CaissonError, describe } from '../errors.js';
import { formatBytes } from '../log/progress.js';
import { ImageArchiveInspector, type InspectResult } from './image-inspector.js';
import { READ_CHUNK } from './source.js';
import type { StageLimits, StagedPackage } from './types.js';

/** The most image.tar.gz may inflate to: `signed` means a trusted key verified the manifest that pins it. */
export function inflateLimit(staged: Pick<StagedPackage, 'imageSize'>, signed: boolean, limits: StageLimits): number {
  if (signed) return limits.maxImageBytes;
  return Math.min(limits.maxImageBytes, staged.imageSize * limits.maxInflateRatio);
}

/**
 * Inflate the staged image.tar.gz (a file Caisson wrote) as a stream and read it as a
 * docker-save archive, writing nothing: memory stays flat. Stops with image.too_large the
 * moment the output passes `maxBytes`. A broken gzip stream, or bytes after it that gunzip
 * would skip (and the engine might not), is a `problem`, reported later as image.invalid.
 */
export async function inspectCompressedImage(staged: Pick<StagedPackage, 'imagePath' | 'imageSize'>, maxBytes: number): Promise<InspectResult> {
  const inspector = new ImageArchiveInspector(false);
  const gunzip = createGunzip();
  let inflated = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      inflated += chunk.length;
      if (inflated > maxBytes) {
        done(tooLarge(staged.imageSize, maxBytes));
        return;
      }
      inspector.write(chunk).then(() => done(), done);
    },
  });
  try {
    await pipeline(createReadStream(staged.imagePath, { highWaterMark: READ_CHUNK }), gunzip, sink);
  } catch (err) {
    if (err instanceof CaissonError) throw err;
    if ((err as NodeJS.ErrnoException).path !== undefined) {
      throw new CaissonError('fs.error', `cannot read the staged image: ${describe(err)}`, { cause: err });
    }
    return { problem: `its gzip stream is broken (${describe(err)})` };
  }
  if (gunzip.bytesWritten !== staged.imageSize) {
    return { problem: `it has ${staged.imageSize - gunzip.bytesWritten} bytes after its gzip stream` };
  }
  return inspector.finish();
}

function tooLarge(compressed: number, maxBytes: number): CaissonError {
  return new CaissonError(
    'image.too_large',
    `image.tar.gz (${formatBytes(compressed)}) inflates to more than ${formatBytes(maxBytes)}; inflation was stopped there`,
  );
}
