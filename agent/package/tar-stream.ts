// A small, strict, streaming ustar/pax/GNU tar parser (and the few writer helpers the
// builder and the tests need). Why not node-tar: see docs/package-format.md.
//
// The parser is push-driven and lazy: `feed(chunk)` is a generator, so a consumer sees each
// header before the parser looks at a single byte past it, and can stop (throw) right there.
// It never buffers entry data: data events are sub-arrays of the chunk that was fed.
//
// Two modes:
// - strict (the outer .edgepkg): ustar magic required, extended headers are reported next to
//   the plain header (the caller rejects disagreement), a lone zero block is an error, anything
//   but zero bytes after the end-of-archive blocks is `package.trailing_garbage`, names must be
//   clean UTF-8 with nothing hidden after a NUL.
// - lenient (the inner docker-save archive, only inspected): pax/GNU names override the plain
//   ones, global headers are skipped, data after the end is ignored.
import { CaissonError, type ErrorCode } from '../errors.js';

export const BLOCK = 512;

export type TarEntryType =
  | 'file'
  | 'hardlink'
  | 'symlink'
  | 'chardev'
  | 'blockdev'
  | 'directory'
  | 'fifo'
  | 'contiguous'
  | 'other';

export interface TarEntry {
  /** Effective path: pax path, else GNU long name, else the plain header name. */
  path: string;
  /** Name from the plain header (prefix + "/" + name for POSIX ustar). */
  headerPath: string;
  paxPath?: string;
  gnuLongName?: string;
  type: TarEntryType;
  typeflag: string;
  /** Effective size (pax size if present, else the plain header's). */
  size: number;
  headerSize: number;
  paxSize?: number;
  linkpath: string;
  /** Byte offset of the plain header in the stream. */
  offset: number;
}

export type TarEvent = { kind: 'entry'; entry: TarEntry } | { kind: 'data'; data: Buffer } | { kind: 'entry-end' };

export interface TarParserOptions {
  strict: boolean;
  /** Largest pax / GNU long-name extended header accepted. */
  maxMetaBytes?: number;
}

type State = 'header' | 'data' | 'pad' | 'meta' | 'end';

interface PendingMeta {
  paxPath?: string;
  paxSize?: number;
  paxLinkpath?: string;
  gnuLongName?: string;
  gnuLongLink?: string;
  sawPax: boolean;
}

export class TarParser {
  private readonly strict: boolean;
  private readonly maxMeta: number;
  private state: State = 'header';
  private readonly hdr = Buffer.alloc(BLOCK);
  private hdrFill = 0;
  private remaining = 0; // data bytes left in the current entry (or meta entry)
  private pad = 0; // padding bytes left after the current entry
  private zeroBlocks = 0;
  private metaKind = '';
  private metaChunks: Buffer[] = [];
  private metaFill = 0;
  private pending: PendingMeta = { sawPax: false };
  private pos = 0; // bytes consumed so far
  private dataEntry = false; // the current data belongs to a reported entry (not a meta header)

  constructor(opts: TarParserOptions) {
    this.strict = opts.strict;
    this.maxMeta = opts.maxMetaBytes ?? (opts.strict ? 64 * 1024 : 1024 * 1024);
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.pos;
  }

  /** True once the two end-of-archive blocks were read. */
  get ended(): boolean {
    return this.state === 'end';
  }

  *feed(chunk: Buffer): Generator<TarEvent, void, undefined> {
    let i = 0;
    const len = chunk.length;
    while (i < len) {
      switch (this.state) {
        case 'header': {
          const take = Math.min(BLOCK - this.hdrFill, len - i);
          chunk.copy(this.hdr, this.hdrFill, i, i + take);
          this.hdrFill += take;
          i += take;
          this.pos += take;
          if (this.hdrFill < BLOCK) break;
          this.hdrFill = 0;
          const ev = this.onHeaderBlock(this.pos - BLOCK);
          if (ev) {
            yield ev;
            if (this.state === 'header' && this.dataEntry) {
              // empty entry: no data, no padding
              this.dataEntry = false;
              yield { kind: 'entry-end' };
            }
          }
          break;
        }
        case 'data': {
          const take = Math.min(this.remaining, len - i);
          const slice = chunk.subarray(i, i + take);
          i += take;
          this.pos += take;
          this.remaining -= take;
          if (take > 0) yield { kind: 'data', data: slice };
          if (this.remaining === 0) {
            this.dataEntry = false;
            this.state = this.pad > 0 ? 'pad' : 'header';
            yield { kind: 'entry-end' };
          }
          break;
        }
        case 'meta': {
          const take = Math.min(this.remaining, len - i);
          this.metaChunks.push(Buffer.from(chunk.subarray(i, i + take)));
          this.metaFill += take;
          i += take;
          this.pos += take;
          this.remaining -= take;
          if (this.remaining === 0) {
            this.state = this.pad > 0 ? 'pad' : 'header';
            this.finishMeta();
          }
          break;
        }
        case 'pad': {
          const take = Math.min(this.pad, len - i);
          i += take;
          this.pos += take;
          this.pad -= take;
          if (this.pad === 0) this.state = 'header';
          break;
        }
        case 'end': {
          if (!this.strict) {
            this.pos += len - i;
            return;
          }
          for (; i < len; i++, this.pos++) {
            if (chunk[i] !== 0) {
              throw new CaissonError('package.trailing_garbage', `non-zero data at byte ${this.pos} after the end of the archive`);
            }
          }
          break;
        }
      }
    }
  }

  /** Call at end of input: anything but a complete archive is `package.truncated`. */
  end(): void {
    if (this.state === 'end') return;
    if (this.pos === 0) throw new CaissonError('package.not_tar', 'the file is empty');
    const where = this.state === 'data' ? `inside an entry (${this.remaining} bytes missing)` : `at byte ${this.pos}`;
    throw new CaissonError('package.truncated', `the archive ends ${where} without its end-of-archive blocks`);
  }

  private fail(code: ErrorCode, message: string): never {
    throw new CaissonError(code, message);
  }

  private onHeaderBlock(offset: number): TarEvent | undefined {
    const h = this.hdr;
    if (isZero(h)) {
      if (this.pending.sawPax || this.pending.gnuLongName !== undefined || this.pending.gnuLongLink !== undefined) {
        this.fail('package.not_tar', `an extended header at byte ${offset - BLOCK} is followed by the end of the archive`);
      }
      this.zeroBlocks++;
      if (this.zeroBlocks === 2) this.state = 'end';
      return undefined;
    }
    if (this.zeroBlocks === 1 && this.strict) {
      this.fail('package.not_tar', `a lone zero block before the header at byte ${offset}`);
    }
    this.zeroBlocks = 0;
    try {
      verifyChecksum(h, offset);
    } catch (err) {
      if (offset === 0) this.fail('package.not_tar', `the file is not a tar archive (${(err as Error).message})`);
      throw err;
    }
    const magic = h.toString('latin1', 257, 263);
    const version = h.toString('latin1', 263, 265);
    let posix: boolean;
    if (magic === 'ustar\0' && version === '00') posix = true;
    else if (magic === 'ustar ' && version === ' \0') posix = false;
    else this.fail('package.not_tar', `the header at byte ${offset} is not a ustar header`);

    const typeflag = String.fromCharCode(h[156] ?? 0);
    const headerSize = parseNumeric(h, 124, 12, 'size', offset);
    let name = this.field(h, 0, 100, 'name', offset);
    if (posix) {
      const prefix = this.field(h, 345, 155, 'prefix', offset);
      if (prefix) name = `${prefix}/${name}`;
    }

    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (typeflag === 'g' && this.strict) {
        this.fail('package.special_entry', `a global extended header at byte ${offset}: only regular files are allowed`);
      }
      if (headerSize > this.maxMeta) {
        this.fail('package.entry_too_large', `an extended header at byte ${offset} is ${headerSize} bytes (limit ${this.maxMeta})`);
      }
      if (this.strict) {
        if ((typeflag === 'x' && this.pending.sawPax) ||
            (typeflag === 'L' && this.pending.gnuLongName !== undefined) ||
            (typeflag === 'K' && this.pending.gnuLongLink !== undefined)) {
          this.fail('package.header_mismatch', `two extended headers of type '${typeflag}' for one entry at byte ${offset}`);
        }
      }
      this.metaKind = typeflag;
      this.metaChunks = [];
      this.metaFill = 0;
      this.remaining = headerSize;
      this.pad = padOf(headerSize);
      this.state = headerSize > 0 ? 'meta' : 'header';
      if (headerSize === 0) this.finishMeta();
      return undefined;
    }

    const linkpath = this.field(h, 157, 100, 'linkname', offset);
    const pending = this.pending;
    this.pending = { sawPax: false };
    const size = pending.paxSize ?? headerSize;
    const type = typeOf(typeflag);
    const entry: TarEntry = {
      path: pending.paxPath ?? pending.gnuLongName ?? name,
      headerPath: name,
      type,
      typeflag,
      size,
      headerSize,
      linkpath: pending.paxLinkpath ?? pending.gnuLongLink ?? linkpath,
      offset,
    };
    if (pending.paxPath !== undefined) entry.paxPath = pending.paxPath;
    if (pending.gnuLongName !== undefined) entry.gnuLongName = pending.gnuLongName;
    if (pending.paxSize !== undefined) entry.paxSize = pending.paxSize;

    // Entries that carry no data in the archive even when a size is declared.
    const carriesData = type === 'file' || type === 'contiguous' || type === 'other';
    const dataSize = carriesData ? size : 0;
    this.remaining = dataSize;
    this.pad = padOf(dataSize);
    this.dataEntry = true;
    this.state = dataSize > 0 ? 'data' : 'header';
    return { kind: 'entry', entry };
  }

  private finishMeta(): void {
    const body = Buffer.concat(this.metaChunks, this.metaFill);
    this.metaChunks = [];
    if (this.metaKind === 'x' || this.metaKind === 'g') {
      const records = parsePax(body, this.strict);
      if (this.metaKind === 'g') return; // lenient mode only: ignored
      this.pending.sawPax = true;
      for (const [key, value] of records) {
        if (key === 'path') this.pending.paxPath = value;
        else if (key === 'linkpath') this.pending.paxLinkpath = value;
        else if (key === 'size') {
          if (!/^[0-9]{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) {
            this.fail('package.not_tar', `pax size "${value.slice(0, 40)}" is not a number`);
          }
          this.pending.paxSize = Number(value);
        }
      }
      return;
    }
    // GNU long name / long link: NUL-terminated.
    const nul = body.indexOf(0);
    const raw = nul >= 0 ? body.subarray(0, nul) : body;
    if (this.strict && nul >= 0 && !isZero(body.subarray(nul))) {
      this.fail('package.path_escape', 'a GNU long name hides bytes after a NUL');
    }
    const text = this.decodeName(raw, 'GNU long name');
    if (this.metaKind === 'L') this.pending.gnuLongName = text;
    else this.pending.gnuLongLink = text;
  }

  private field(h: Buffer, start: number, length: number, what: string, offset: number): string {
    const raw = h.subarray(start, start + length);
    const nul = raw.indexOf(0);
    const value = nul >= 0 ? raw.subarray(0, nul) : raw;
    if (this.strict && nul >= 0 && !isZero(raw.subarray(nul))) {
      this.fail('package.path_escape', `the ${what} field at byte ${offset} hides bytes after a NUL`);
    }
    return this.decodeName(value, what);
  }

  private decodeName(bytes: Buffer, what: string): string {
    if (!this.strict) return bytes.toString('utf8');
    try {
      return UTF8.decode(bytes);
    } catch {
      this.fail('package.path_escape', `the ${what} is not valid UTF-8`);
    }
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function typeOf(flag: string): TarEntryType {
  switch (flag) {
    case '0':
    case '\0':
      return 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '3':
      return 'chardev';
    case '4':
      return 'blockdev';
    case '5':
      return 'directory';
    case '6':
      return 'fifo';
    case '7':
      return 'contiguous';
    default:
      return 'other';
  }
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

function padOf(size: number): number {
  const r = size % BLOCK;
  return r === 0 ? 0 : BLOCK - r;
}

function verifyChecksum(h: Buffer, offset: number): void {
  const stored = h.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (!/^[0-7]{1,7}$/.test(stored)) {
    throw new CaissonError('package.not_tar', `the header at byte ${offset} has no valid checksum field`);
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (h[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  const want = parseInt(stored, 8);
  if (want !== unsigned && want !== signed) {
    throw new CaissonError('package.not_tar', `bad header checksum at byte ${offset}`);
  }
}

/** Octal (NUL/space terminated) or GNU base-256 numeric field. */
function parseNumeric(h: Buffer, start: number, length: number, what: string, offset: number): number {
  const first = h[start] as number;
  if (first & 0x80) {
    if (first === 0xff) throw new CaissonError('package.not_tar', `negative ${what} in the header at byte ${offset}`);
    let v = BigInt(first & 0x7f);
    for (let i = start + 1; i < start + length; i++) v = (v << 8n) | BigInt(h[i] as number);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new CaissonError('package.entry_too_large', `the ${what} in the header at byte ${offset} is absurdly large (${v})`);
    }
    return Number(v);
  }
  const text = h
    .subarray(start, start + length)
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new CaissonError('package.not_tar', `bad ${what} field in the header at byte ${offset}`);
  return parseInt(text, 8);
}

/** Parse "LEN key=value\n" records. */
function parsePax(body: Buffer, strict: boolean): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let i = 0;
  while (i < body.length) {
    if (!strict && body[i] === 0) break; // some writers pad with NULs
    const sp = body.indexOf(0x20, i);
    const lenText = sp > i ? body.toString('latin1', i, sp) : '';
    const recLen = /^[1-9][0-9]{0,7}$/.test(lenText) ? parseInt(lenText, 10) : NaN;
    if (!Number.isFinite(recLen) || i + recLen > body.length || body[i + recLen - 1] !== 0x0a) {
      throw new CaissonError('package.not_tar', 'malformed pax extended header');
    }
    const rec = body.subarray(sp + 1, i + recLen - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new CaissonError('package.not_tar', 'malformed pax record (no key)');
    let key: string;
    let value: string;
    try {
      key = UTF8.decode(rec.subarray(0, eq));
      value = UTF8.decode(rec.subarray(eq + 1));
    } catch {
      if (strict) throw new CaissonError('package.path_escape', 'a pax record is not valid UTF-8');
      key = rec.subarray(0, eq).toString('utf8');
      value = rec.subarray(eq + 1).toString('utf8');
    }
    out.push([key, value]);
    i += recLen;
  }
  return out;
}

// --- writing -------------------------------------------------------------------------------

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
  /** Raw name bytes, written as given (for crafting hostile headers). */
  nameBytes?: Buffer;
  prefix?: string;
  /** 'posix' (ustar\0 00, default) or 'gnu' (ustar  \0). */
  format?: 'posix' | 'gnu';
  /** Write the size as GNU base-256 even when it would fit in octal. */
  base256Size?: boolean;
}

const MAX_OCTAL_SIZE = 0o77777777777; // 11 octal digits: 8 GiB - 1

/** One 512-byte ustar header with a valid checksum. Sizes beyond 8 GiB use base-256. */
export function tarHeader(o: HeaderOptions): Buffer {
  const h = Buffer.alloc(BLOCK);
  const name = o.nameBytes ?? Buffer.from(o.name, 'utf8');
  if (name.length > 100) throw new Error(`tar name too long: ${o.name}`);
  name.copy(h, 0);
  writeOctal(h, 100, 8, o.mode ?? 0o644);
  writeOctal(h, 108, 8, 0);
  writeOctal(h, 116, 8, 0);
  const size = o.size ?? 0;
  if (o.base256Size || size > MAX_OCTAL_SIZE) {
    let v = BigInt(size);
    for (let i = 124 + 11; i > 124; i--) {
      h[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    h[124] = 0x80;
  } else {
    writeOctal(h, 124, 12, size);
  }
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
  return Buffer.alloc(padOf(size));
}

/** A whole in-memory entry: header + data + padding. */
export function tarEntry(o: HeaderOptions, data: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([tarHeader({ ...o, size: o.size ?? data.length }), data, tarPadding(data.length)]);
}

/** Two zero blocks. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}
