// A small, strict, streaming ustar/pax/GNU tar parser (the writer is tar-writer.ts). Why
// not node-tar: see docs/package-format.md.
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
      this.onZeroBlock(offset);
      return undefined;
    }
    if (this.zeroBlocks === 1 && this.strict) {
      this.fail('package.not_tar', `a lone zero block before the header at byte ${offset}`);
    }
    this.zeroBlocks = 0;
    const posix = this.checkHeader(h, offset);
    const typeflag = String.fromCharCode(h[156] ?? 0);
    const headerSize = parseNumeric(h, 124, 12, 'size', offset);
    let name = this.field(h, 0, 100, 'name', offset);
    if (posix) {
      const prefix = this.field(h, 345, 155, 'prefix', offset);
      if (prefix) name = `${prefix}/${name}`;
    }
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      this.startMeta(typeflag, headerSize, offset);
      return undefined;
    }
    return { kind: 'entry', entry: this.startEntry(h, typeflag, name, headerSize, offset) };
  }

  /** One of the two end-of-archive blocks (an extended header must not come right before). */
  private onZeroBlock(offset: number): void {
    if (this.pending.sawPax || this.pending.gnuLongName !== undefined || this.pending.gnuLongLink !== undefined) {
      this.fail('package.not_tar', `an extended header at byte ${offset - BLOCK} is followed by the end of the archive`);
    }
    this.zeroBlocks++;
    if (this.zeroBlocks === 2) this.state = 'end';
  }

  /** Checksum and magic; true for POSIX ustar, false for GNU. */
  private checkHeader(h: Buffer, offset: number): boolean {
    try {
      verifyChecksum(h, offset);
    } catch (err) {
      if (offset === 0) this.fail('package.not_tar', `the file is not a tar archive (${(err as Error).message})`);
      throw err;
    }
    const magic = h.toString('latin1', 257, 263);
    const version = h.toString('latin1', 263, 265);
    if (magic === 'ustar\0' && version === '00') return true;
    if (magic === 'ustar ' && version === ' \0') return false;
    this.fail('package.not_tar', `the header at byte ${offset} is not a ustar header`);
  }

  /** A pax or GNU extended header: its body is collected (finishMeta) for the next entry. */
  private startMeta(typeflag: string, headerSize: number, offset: number): void {
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
  }

  /** A real entry: the plain header merged with the extended headers before it. */
  private startEntry(h: Buffer, typeflag: string, name: string, headerSize: number, offset: number): TarEntry {
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
    return entry;
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
