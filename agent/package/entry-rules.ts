// What a package may hold: the allowlisted entry names and the rules every tar entry must
// pass before a byte of it is copied (safe path, headers that agree, regular files only,
// no duplicates, sizes within the limits and within the file).
import { CaissonError } from '../errors.js';
import type { TarEntry } from './tar-parser.js';
import type { StageLimits } from './types.js';

export const MANIFEST_NAME = 'manifest.toml';
export const SIGNATURE_NAME = 'manifest.toml.sig';
export const IMAGE_NAMES = ['image.tar', 'image.tar.gz'] as const;
/** The same image entries encrypted (encryption.ts): the name plus ".age". */
export const ENCRYPTED_IMAGE_NAMES = ['image.tar.age', 'image.tar.gz.age'] as const;
const ALLOWED = new Set<string>([MANIFEST_NAME, SIGNATURE_NAME, ...IMAGE_NAMES, ...ENCRYPTED_IMAGE_NAMES]);
const IMAGE_ENTRIES = new Set<string>([...IMAGE_NAMES, ...ENCRYPTED_IMAGE_NAMES]);

export function isImageEntry(name: string): boolean {
  return IMAGE_ENTRIES.has(name);
}

/** Path safety first, then extended-header agreement, then entry type, name, duplicates, size. */
export function checkEntry(e: TarEntry, seen: Set<string>, limits: StageLimits, packageSize: number): void {
  for (const p of [e.headerPath, e.paxPath, e.gnuLongName]) if (p !== undefined) checkSafePath(p, e.offset);
  if (e.paxPath !== undefined && e.paxPath !== e.headerPath) {
    throw new CaissonError('package.header_mismatch', `the pax path "${show(e.paxPath)}" disagrees with the header name "${show(e.headerPath)}" at byte ${e.offset}`);
  }
  if (e.gnuLongName !== undefined && e.gnuLongName !== e.headerPath) {
    throw new CaissonError('package.header_mismatch', `the GNU long name "${show(e.gnuLongName)}" disagrees with the header name "${show(e.headerPath)}" at byte ${e.offset}`);
  }
  if (e.paxSize !== undefined && e.paxSize !== e.headerSize) {
    throw new CaissonError('package.header_mismatch', `the pax size ${e.paxSize} disagrees with the header size ${e.headerSize} for "${show(e.path)}"`);
  }
  if (e.type === 'hardlink' || e.type === 'symlink') {
    throw new CaissonError('package.link_entry', `"${show(e.path)}" is a ${e.type === 'symlink' ? 'symbolic' : 'hard'} link; links are not allowed`);
  }
  if (e.type !== 'file') {
    throw new CaissonError('package.special_entry', `"${show(e.path)}" is a ${describeType(e)}; only regular files are allowed`);
  }
  if (e.linkpath !== '') {
    throw new CaissonError('package.header_mismatch', `regular file "${show(e.path)}" carries a link target`);
  }
  if (!ALLOWED.has(e.path)) {
    throw new CaissonError('package.unexpected_entry', `unexpected entry "${show(e.path)}"; only manifest.toml, image.tar (or image.tar.gz, either optionally encrypted as .age) and manifest.toml.sig are allowed`);
  }
  const isImage = isImageEntry(e.path);
  if (seen.has(e.path)) {
    throw new CaissonError('package.duplicate_entry', `"${e.path}" appears twice (a package holds one manifest, one image, one signature)`);
  }
  if (isImage && [...seen].some(isImageEntry)) {
    throw new CaissonError('package.duplicate_entry', `"${e.path}" is a second image (a package holds exactly one image)`);
  }
  seen.add(e.path);
  if (e.path === MANIFEST_NAME && e.size > limits.maxManifestBytes) {
    throw new CaissonError('manifest.too_large', `manifest.toml is ${e.size} bytes (limit ${limits.maxManifestBytes})`);
  }
  if (e.path === SIGNATURE_NAME && e.size > limits.maxSignatureBytes) {
    throw new CaissonError('package.entry_too_large', `manifest.toml.sig is ${e.size} bytes (limit ${limits.maxSignatureBytes})`);
  }
  if (e.size > limits.maxPackageBytes) {
    throw new CaissonError('package.entry_too_large', `"${e.path}" declares ${e.size} bytes, more than a package may hold (${limits.maxPackageBytes})`);
  }
  const end = e.offset + 512 + e.size;
  if (end > packageSize) {
    throw new CaissonError('package.truncated', `"${e.path}" declares ${e.size} bytes but the package ends ${end - packageSize} bytes early`);
  }
}

function describeType(e: TarEntry): string {
  switch (e.type) {
    case 'directory':
      return 'folder';
    case 'chardev':
      return 'character device';
    case 'blockdev':
      return 'block device';
    case 'fifo':
      return 'FIFO';
    case 'contiguous':
      return 'contiguous file';
    default:
      return `tar entry of type '${show(e.typeflag)}'`;
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Reject empty, absolute, backslash, `..` and control-character names. */
export function checkSafePath(p: string, offset = 0): void {
  const why =
    p === ''
      ? 'an empty name'
      : CONTROL.test(p)
        ? 'a name with NUL or control characters'
        : p.startsWith('/')
          ? 'an absolute path'
          : p.includes('\\')
            ? 'a backslash in the name'
            : p.split('/').includes('..')
              ? 'a ".." component'
              : undefined;
  if (why) throw new CaissonError('package.path_escape', `entry at byte ${offset} has ${why}: "${show(p)}"`);
}

function show(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f"\\]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`).slice(0, 120);
}
