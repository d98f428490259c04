// Tar headers no honest writer makes, for the hostile-package tests: raw name bytes (a NUL
// with a path hidden after it, invalid UTF-8) and a base-256 size where octal would fit.
// Built from agent/package/tar-writer.ts's header, then edited and re-summed.
import { setChecksum, tarHeader, tarPadding, writeBase256Size, type HeaderOptions } from '../../agent/package/tar-writer.js';

export interface CraftHeaderOptions extends HeaderOptions {
  /** Raw bytes of the name field (up to 100), written as given instead of `name`. */
  nameBytes?: Buffer;
  /** Write the size as GNU base-256 even when it would fit in octal. */
  base256Size?: boolean;
}

/** One 512-byte header with the crafted fields and a valid checksum. */
export function craftHeader(o: CraftHeaderOptions): Buffer {
  const h = tarHeader(o.nameBytes ? { ...o, name: '' } : o);
  if (o.nameBytes) {
    if (o.nameBytes.length > 100) throw new Error('a tar name field holds 100 bytes');
    h.fill(0, 0, 100);
    o.nameBytes.copy(h, 0);
  }
  if (o.base256Size) writeBase256Size(h, o.size ?? 0);
  setChecksum(h);
  return h;
}

/** A whole in-memory entry with a crafted header: header + data + padding. */
export function craftEntry(o: CraftHeaderOptions, data: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([craftHeader({ ...o, size: o.size ?? data.length }), data, tarPadding(data.length)]);
}
