// Reads a docker-save archive as it streams by (its rules: image-archive.ts), for the reader,
// the builder and the inflater alike.
import { once } from 'node:events';
import { createGunzip, type Gunzip } from 'node:zlib';
import { describe } from '../errors.js';
import { ImageArchiveReader, type InspectResult } from './image-archive.js';
import type { StagedPackage } from './types.js';

export type { InspectResult } from './image-archive.js';

/**
 * What an inspection found, into the staged package: every image (archiveImages), the only
 * one when there is exactly one (imageArchive), or why the archive cannot be loaded.
 */
export function recordInspection(staged: StagedPackage, result: InspectResult | undefined): void {
  if (result?.images) {
    staged.archiveImages = result.images;
    if (result.images.length === 1) staged.imageArchive = result.images[0]!;
  } else if (result?.problem) {
    staged.imageArchiveProblem = result.problem;
  }
}

/**
 * Reads a docker-save archive as it streams by (image-archive.ts), optionally gunzipping it
 * first (image.tar.gz). Never throws from write(): a broken archive just yields a `problem`.
 */
export class ImageArchiveInspector {
  private readonly archive = new ImageArchiveReader();
  private readonly gunzip: Gunzip | undefined;
  private gunzipDone: Promise<unknown> | undefined;

  constructor(gzipped = false) {
    if (gzipped) {
      const gz = createGunzip();
      this.gunzip = gz;
      gz.on('data', (d: Buffer) => this.feed(d));
      gz.on('error', (err) => this.setProblem(`its gzip stream is broken (${describe(err)})`));
      this.gunzipDone = once(gz, 'end').catch(() => undefined);
    }
  }

  async write(data: Buffer): Promise<void> {
    if (this.problem) return;
    if (this.gunzip) {
      // a copy: the read buffer is reused while zlib may still hold on to the chunk
      if (!this.gunzip.write(Buffer.from(data))) await Promise.race([once(this.gunzip, 'drain'), once(this.gunzip, 'close')]);
      return;
    }
    this.feed(data);
  }

  async finish(): Promise<InspectResult> {
    if (this.gunzip) {
      if (!this.problem) {
        this.gunzip.end();
        await this.gunzipDone;
      } else {
        this.gunzip.destroy();
      }
    }
    return this.archive.finish();
  }

  private get problem(): boolean {
    return this.archive.failed;
  }

  private setProblem(p: string): void {
    this.archive.fail(p);
  }

  private feed(data: Buffer): void {
    this.archive.write(data);
  }
}
