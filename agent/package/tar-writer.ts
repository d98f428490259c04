// Writing tar: the ustar headers, padding and end blocks the builder streams around its
// entries, and small in-memory entries (pax bodies, whole entries) for tests and tools.
// Crafting hostile headers (raw name bytes, forced base-256 sizes) is test-only and lives
// in test/support/tar-craft.ts. The parser is tar-parser.ts.
import { BLOCK } from './tar-parser.js';

export interface HeaderOptions {
  name: string;
  size?: number;
  /** Type flag character; '0' (regular file) by default. */
  typeflag?: string;
  mode?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  prefix?: string;
  /** 'posix' (ustar\0 00, default) or 'gnu' (ustar  \0). */
  format?: 'posix' | 'gnu';
}

const MAX_OCTAL_SIZE = 0o77777777777; // 11 octal digits: 8 GiB - 1

/** One 512-byte ustar header with a valid checksum. Sizes beyond 8 GiB use base-256. */
export function tarHeader(o: HeaderOptions): Buffer {
  const h = Buffer.alloc(BLOCK);
  const name = Buffer.from(o.name, 'utf8');
  if (name.length > 100) throw new Error(`tar name too long: ${o.name}`);
  name.copy(h, 0);
  writeOctal(h, 100, 8, o.mode ?? 0o644);
  writeOctal(h, 108, 8, 0);
  writeOctal(h, 116, 8, 0);
  const size = o.size ?? 0;
  if (size > MAX_OCTAL_SIZE) writeBase256Size(h, size);
  else writeOctal(h, 124, 12, size);
  writeOctal(h, 136, 12, o.mtime ?? 0);
  h.write((o.typeflag ?? '0').slice(0, 1), 156, 'latin1');
  if (o.linkname) h.write(o.linkname, 157, 100, 'utf8');
  if (o.format === 'gnu') h.write('ustar  \0', 257, 'latin1');
  else h.write('ustar\x0000', 257, 'latin1');
  h.write('root', 265, 'latin1');
  h.write('root', 297, 'latin1');
  writeOctal(h, 329, 8, o.devmajor ?? 0);
  writeOctal(h, 337, 8, o.devminor ?? 0);
  if (o.prefix) h.write(o.prefix, 345, 155, 'utf8');
  setChecksum(h);
  return h;
}

/** Recompute a header's checksum (after editing it by hand). */
export function setChecksum(h: Buffer): void {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i] as number;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
}

/** GNU base-256 size field: 0x80, then the size big-endian in the other 11 bytes. */
export function writeBase256Size(h: Buffer, size: number): void {
  let v = BigInt(size);
  for (let i = 124 + 11; i > 124; i--) {
    h[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  h[124] = 0x80;
}

function writeOctal(h: Buffer, start: number, length: number, value: number): void {
  h.write(value.toString(8).padStart(length - 1, '0') + '\0', start, length, 'latin1');
}

/** The body of a pax extended header holding the given records. */
export function paxBody(records: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of Object.entries(records)) {
    const rest = ` ${key}=${value}\n`;
    const restLen = Buffer.byteLength(rest);
    let len = restLen + 1;
    while (String(len).length + restLen !== len) len = String(len).length + restLen;
    parts.push(Buffer.from(`${len}${rest}`));
  }
  return Buffer.concat(parts);
}

/** Zero padding that completes a `size`-byte entry to a whole block. */
export function tarPadding(size: number): Buffer {
  const r = size % BLOCK;
  return Buffer.alloc(r === 0 ? 0 : BLOCK - r);
}

/** A whole in-memory entry: header + data + padding. */
export function tarEntry(o: HeaderOptions, data: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([tarHeader({ ...o, size: o.size ?? data.length }), data, tarPadding(data.length)]);
}

/** Two zero blocks. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}
