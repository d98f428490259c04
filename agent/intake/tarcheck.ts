// "Is this file a whole tar?" without reading it: walk the header chain (one 512-byte
// header per entry, skipping the data) and require the end-of-archive marker (two zero
// blocks) inside the file. A file still being copied ends somewhere inside an entry or
// before the marker, so this fails for it even when its size happens to stand still.
// A file whose first header is there but is no tar header at all can never become a
// package, however long the inbox waits: that is told apart as `not_tar`.
import { open } from 'node:fs/promises';

const BLOCK = 512;
const MAX_ENTRIES = 10_000;

/** `whole`: a complete tar; `not_tar`: its first block is no tar header; `incomplete`: anything else. */
export type TarFileState = 'whole' | 'incomplete' | 'not_tar';

export async function isWholeTar(path: string): Promise<boolean> {
  return (await tarFileState(path)) === 'whole';
}

export async function tarFileState(path: string): Promise<TarFileState> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size < BLOCK) return 'incomplete';
    const header = Buffer.alloc(BLOCK);
    await readFully(fh, header, 0);
    // a preallocated file still being filled reads as zeros: only a written header can be wrong
    if (!isZero(header) && !(checksumOk(header) && hasUstarMagic(header))) return 'not_tar';
    if (size < 2 * BLOCK || size % BLOCK !== 0) return 'incomplete';
    let pos = 0;
    for (let entries = 0; entries <= MAX_ENTRIES; entries++) {
      if (pos + BLOCK > size) return 'incomplete';
      await readFully(fh, header, pos);
      if (isZero(header)) {
        if (pos + 2 * BLOCK > size) return 'incomplete';
        await readFully(fh, header, pos + BLOCK);
        return isZero(header) ? 'whole' : 'incomplete';
      }
      if (!checksumOk(header)) return 'incomplete';
      const entrySize = parseSize(header.subarray(124, 136));
      if (entrySize === undefined) return 'incomplete';
      pos += BLOCK + Math.ceil(entrySize / BLOCK) * BLOCK;
    }
    return 'incomplete';
  } finally {
    await fh.close();
  }
}

/** POSIX (`ustar\0`) or GNU (`ustar `) magic, as the package reader requires. */
function hasUstarMagic(h: Buffer): boolean {
  return h.toString('latin1', 257, 262) === 'ustar' && (h[262] === 0 || h[262] === 0x20);
}

async function readFully(fh: import('node:fs/promises').FileHandle, buf: Buffer, pos: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesRead } = await fh.read(buf, off, buf.length - off, pos + off);
    if (bytesRead === 0) throw new Error('unexpected end of file');
    off += bytesRead;
  }
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

function checksumOk(h: Buffer): boolean {
  const stored = parseOctal(h.subarray(148, 156));
  if (stored === undefined) return false;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum === stored;
}

function parseSize(field: Buffer): number | undefined {
  if (field[0]! & 0x80) {
    // GNU base-256: big-endian binary after the marker bit
    let n = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return Number.isSafeInteger(n) ? n : undefined;
  }
  return parseOctal(field);
}

function parseOctal(field: Buffer): number | undefined {
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (!/^[0-7]+$/.test(text)) return text === '' ? 0 : undefined;
  return Number.parseInt(text, 8);
}
