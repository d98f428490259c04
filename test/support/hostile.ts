// A corpus of hostile or invalid .edgepkg files, crafted byte by byte where it matters.
// Every case names the ONE error code an update must fail with.
//
// Usage:
//   const ctx = await createHostileContext(workDir);        // builds + saves one busybox test image
//   for (const c of hostileCases()) {
//     const path = c.build(caseDir, ctx);                    // writes the file, returns its path
//     // apply it with ctx.catalogToml as services.toml, and — only when c.trustedKeys —
//     // ctx.trustedKeyDir as the trusted keys folder (otherwise an empty/missing folder);
//     // expect rejection with c.expectCode.
//   }
//   removeHostileContext(ctx);                               // removes the test image
//
// Self-contained and deterministic: the keys come from fixed seeds, the manifests from fixed
// text, and every case is derived from the one image archive in ctx.
import { createHash, createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { craftTar, ociImage } from './image-archives.js';
import type { ErrorCode } from '../../agent/errors.js';
import { parseCatalog, type Catalog } from '../../agent/config/services.js';
import { UPDATER_VERSION } from '../../agent/version.js';
import { paxBody, setChecksum, tarEnd, tarEntry, tarHeader, type HeaderOptions } from '../../agent/package/tar-writer.js';
import { craftEntry } from './tar-craft.js';
import { buildTestImage, imageExists, saveImage, cleanupTestObjects } from './images.js';

export const HOSTILE_IMAGE_REF = 'caisson-pkgtest/hostile:1.0.0';

export interface HostileContext {
  /** Folder holding the context's files (image archive, keys, catalog). */
  dir: string;
  /** The image reference the valid image.tar holds (the only RepoTag). */
  imageRef: string;
  /** A real `docker save` of imageRef. */
  imageTar: Buffer;
  catalog: Catalog;
  /** services.toml text for `catalog`. */
  catalogToml: string;
  service: { name: string; revision: string; platform: string };
  /** Folder with trusted.pub: configure it for cases with `trustedKeys: true`. */
  trustedKeyDir: string;
  trustedPrivateKeyPem: string;
  /** A valid Ed25519 key that is NOT trusted. */
  otherPrivateKeyPem: string;
  updaterVersion: string;
  /** True when createHostileContext built the image (removeHostileContext removes it then). */
  builtImage: boolean;
}

export interface HostileCase {
  name: string;
  expectCode: ErrorCode;
  /** Apply with ctx.trustedKeyDir configured (otherwise with no trusted keys). */
  trustedKeys?: boolean;
  /** Writes the package (or the hostile file system object) into `dir`, returns its path. */
  build(dir: string, ctx: HostileContext): string;
}

const CATALOG_TOML = `catalog_version = 1

[[services]]
name = "hostile-svc"
service_revision = "hostile-v1"
platform = "linux/amd64"
runtime_mode = "docker"

[services.docker]
container_name = "caisson-hostile-svc"
image_reference = "caisson-pkgtest/hostile:current"
`;

/** An Ed25519 private key (PKCS#8 PEM) from a fixed seed. */
export function seededPrivateKeyPem(seedText: string): string {
  const seed = createHash('sha256').update(seedText).digest();
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
}

export async function createHostileContext(
  workDir: string,
  opts: { imageRef?: string; imageTarPath?: string } = {},
): Promise<HostileContext> {
  const dir = join(workDir, 'hostile-ctx');
  mkdirSync(dir, { recursive: true });
  const imageRef = opts.imageRef ?? HOSTILE_IMAGE_REF;
  let builtImage = false;
  let imageTarPath = opts.imageTarPath;
  if (!imageTarPath) {
    if (!imageExists(imageRef)) {
      buildTestImage({ ref: imageRef, version: '1.0.0' });
      builtImage = true;
    }
    imageTarPath = join(dir, 'image.tar');
    saveImage(imageRef, imageTarPath);
  }
  const trustedPrivateKeyPem = seededPrivateKeyPem('caisson hostile corpus: trusted');
  const otherPrivateKeyPem = seededPrivateKeyPem('caisson hostile corpus: other');
  const trustedKeyDir = join(dir, 'trusted-keys');
  mkdirSync(trustedKeyDir, { recursive: true });
  writeFileSync(
    join(trustedKeyDir, 'trusted.pub'),
    createPublicKey(trustedPrivateKeyPem).export({ type: 'spki', format: 'pem' }) as string,
  );
  writeFileSync(join(dir, 'services.toml'), CATALOG_TOML);
  return {
    dir,
    imageRef,
    imageTar: readFileSync(imageTarPath),
    catalog: parseCatalog(CATALOG_TOML),
    catalogToml: CATALOG_TOML,
    service: { name: 'hostile-svc', revision: 'hostile-v1', platform: 'linux/amd64' },
    trustedKeyDir,
    trustedPrivateKeyPem,
    otherPrivateKeyPem,
    updaterVersion: UPDATER_VERSION,
    builtImage,
  };
}

export function removeHostileContext(ctx: HostileContext): void {
  if (ctx.builtImage) cleanupTestObjects([ctx.imageRef]);
}

// --- building blocks -----------------------------------------------------------------------

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export interface ManifestFields {
  format_version: string;
  package_type: string;
  package_version: string;
  created_at: string;
  /** Raw TOML value, or '' to leave issued_at out. */
  issued_at: string;
  service: string;
  service_revision: string;
  platform: string;
  reference: string;
  /** Raw TOML lines for the [image] pins (sha256/size), or '' for none. */
  pins: string;
  min_updater_version: string;
  extraTop: string;
}

/** manifest.toml text for `image`, with fields overridable as raw TOML values. */
export function manifestText(ctx: HostileContext, image: Buffer, over: Partial<ManifestFields> = {}): string {
  const f: ManifestFields = {
    format_version: '1',
    package_type: '"service"',
    package_version: '"1.0.0"',
    created_at: '"2026-03-16T18:30:00Z"',
    issued_at: '"2026-03-16T18:30:00Z"',
    service: JSON.stringify(ctx.service.name),
    service_revision: JSON.stringify(ctx.service.revision),
    platform: JSON.stringify(ctx.service.platform),
    reference: JSON.stringify(ctx.imageRef),
    pins: `sha256 = "${sha256(image)}"\nsize = ${image.length}\n`,
    min_updater_version: '"0.1.0"',
    extraTop: '',
    ...over,
  };
  return `format_version = ${f.format_version}
package_type = ${f.package_type}
package_version = ${f.package_version}
created_at = ${f.created_at}
${f.issued_at ? `issued_at = ${f.issued_at}\n` : ''}${f.extraTop}
[target]
service = ${f.service}
service_revision = ${f.service_revision}
platform = ${f.platform}

[image]
reference = ${f.reference}
${f.pins}
[compatibility]
min_updater_version = ${f.min_updater_version}
`;
}

const file = (name: string, data: Buffer | string, extra: Partial<HeaderOptions> = {}): Buffer =>
  tarEntry({ name, ...extra }, Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8'));

const archive = (...parts: Buffer[]): Buffer => Buffer.concat([...parts, tarEnd()]);

function write(dir: string, name: string, bytes: Buffer): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** A complete, valid package (signed with `signWith` if given). */
export function validPackageBytes(
  ctx: HostileContext,
  opts: { manifest?: string | Buffer; image?: Buffer; imageName?: string; signWith?: string; signBytes?: Buffer } = {},
): Buffer {
  const image = opts.image ?? ctx.imageTar;
  const manifest = Buffer.isBuffer(opts.manifest) ? opts.manifest : Buffer.from(opts.manifest ?? manifestText(ctx, image), 'utf8');
  const parts = [file('manifest.toml', manifest), file(opts.imageName ?? 'image.tar', image)];
  if (opts.signWith) {
    const sig = sign(null, opts.signBytes ?? manifest, createPrivateKey(opts.signWith)).toString('base64') + '\n';
    parts.push(file('manifest.toml.sig', sig));
  }
  return archive(...parts);
}

/** Write a valid package; the positive control for the corpus. */
export function buildValidPackage(dir: string, ctx: HostileContext, signed = false): string {
  return write(dir, 'valid.edgepkg', validPackageBytes(ctx, signed ? { signWith: ctx.trustedPrivateKeyPem } : {}));
}

/** Rewrite the manifest.json of a docker-save archive (plain ustar walk, test data only). */
export function rewriteImageManifest(imageTar: Buffer, mutate: (doc: Array<Record<string, unknown>>) => unknown): Buffer {
  const out: Buffer[] = [];
  let o = 0;
  while (o + 512 <= imageTar.length) {
    const h = imageTar.subarray(o, o + 512);
    if (h.every((b) => b === 0)) break;
    const name = h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
    const size = parseInt(h.toString('latin1', 124, 136).replace(/[\0 ]/g, '') || '0', 8);
    const end = o + 512 + Math.ceil(size / 512) * 512;
    if (name === 'manifest.json') {
      const doc = JSON.parse(imageTar.toString('utf8', o + 512, o + 512 + size)) as Array<Record<string, unknown>>;
      out.push(file('manifest.json', JSON.stringify(mutate(doc))));
    } else {
      out.push(imageTar.subarray(o, end));
    }
    o = end;
  }
  return archive(...out);
}

/**
 * A gzip bomb: `inflatedMiB` gzip members of 1 MiB of zeros each, about 1/1000 of what it
 * inflates to (gunzip and Docker both read concatenated members as one stream).
 */
export function gzipBomb(inflatedMiB: number): Buffer {
  const member = gzipSync(Buffer.alloc(1024 * 1024), { level: 9 });
  return Buffer.concat(Array.from({ length: inflatedMiB }, () => member));
}

/** A package whose image is image.tar.gz = `gz`, pinned to it unless `pins` says otherwise. */
export function gzipPackageBytes(ctx: HostileContext, gz: Buffer, opts: { pins?: string; signWith?: string } = {}): Buffer {
  const manifest = manifestText(ctx, gz, opts.pins === undefined ? {} : { pins: opts.pins });
  return validPackageBytes(ctx, { image: gz, imageName: 'image.tar.gz', manifest, ...(opts.signWith ? { signWith: opts.signWith } : {}) });
}

function header(o: HeaderOptions): Buffer {
  return tarHeader(o);
}

/** A package whose manifest.toml is `manifest` (image pinned unless the text says otherwise). */
function withManifest(ctx: HostileContext, manifest: string | Buffer, image = ctx.imageTar): Buffer {
  return validPackageBytes(ctx, { manifest, image });
}

// --- the corpus ---------------------------------------------------------------------------------

export function hostileCases(): HostileCase[] {
  const cases: HostileCase[] = [];
  const add = (name: string, expectCode: ErrorCode, make: (ctx: HostileContext) => Buffer, trustedKeys = false): void => {
    const fileName = `${name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase()}.edgepkg`;
    cases.push({ name, expectCode, trustedKeys, build: (dir, ctx) => write(dir, fileName, make(ctx)) });
  };
  const m = (ctx: HostileContext): Buffer => file('manifest.toml', manifestText(ctx, ctx.imageTar));
  const img = (ctx: HostileContext): Buffer => file('image.tar', ctx.imageTar);

  // --- links, devices, folders ---
  add('symlink manifest.toml -> /etc/passwd', 'package.link_entry', (ctx) =>
    archive(tarEntry({ name: 'manifest.toml', typeflag: '2', linkname: '/etc/passwd' }), img(ctx)));
  add('symlink entry named evil', 'package.link_entry', (ctx) =>
    archive(m(ctx), tarEntry({ name: 'evil', typeflag: '2', linkname: '../../../../tmp' }), img(ctx)));
  add('hardlink image.tar -> /etc/shadow', 'package.link_entry', (ctx) =>
    archive(m(ctx), tarEntry({ name: 'image.tar', typeflag: '1', linkname: '/etc/shadow' })));
  add('hardlink with declared size', 'package.link_entry', (ctx) =>
    archive(m(ctx), header({ name: 'manifest.toml.sig', typeflag: '1', linkname: 'manifest.toml', size: 0 }), img(ctx)));
  add('character device entry', 'package.special_entry', (ctx) =>
    archive(m(ctx), tarEntry({ name: 'image.tar', typeflag: '3', devmajor: 1, devminor: 3 })));
  add('block device entry', 'package.special_entry', (ctx) =>
    archive(m(ctx), tarEntry({ name: 'image.tar', typeflag: '4', devmajor: 8, devminor: 0 })));
  add('FIFO entry', 'package.special_entry', (ctx) => archive(m(ctx), tarEntry({ name: 'manifest.toml.sig', typeflag: '6' }), img(ctx)));
  add('directory entry', 'package.special_entry', (ctx) => archive(tarEntry({ name: 'sub/', typeflag: '5', mode: 0o755 }), m(ctx), img(ctx)));
  add('contiguous-file entry', 'package.special_entry', (ctx) => archive(m(ctx), file('image.tar', ctx.imageTar, { typeflag: '7' })));
  add('global pax header', 'package.special_entry', (ctx) =>
    archive(file('pax_global_header', paxBody({ comment: 'x' }), { typeflag: 'g' }), m(ctx), img(ctx)));

  // --- names ---
  add('../x path', 'package.path_escape', (ctx) => archive(m(ctx), img(ctx), file('../x', 'boom')));
  add('../../ deep path', 'package.path_escape', (ctx) => archive(file('a/../../etc/cron.d/x', '* * * * * root reboot\n'), m(ctx), img(ctx)));
  add('absolute path', 'package.path_escape', (ctx) => archive(file('/abs/manifest.toml', 'x'), m(ctx), img(ctx)));
  add('backslash path', 'package.path_escape', (ctx) => archive(m(ctx), img(ctx), file('a\\b', 'x')));
  add('control character in name', 'package.path_escape', (ctx) => archive(file('manifest.toml\x01', 'x'), m(ctx), img(ctx)));
  add('bytes hidden after NUL in name', 'package.path_escape', (ctx) =>
    archive(craftEntry({ name: '', nameBytes: Buffer.from('manifest.toml\0../../etc/x', 'latin1') }, Buffer.from(manifestText(ctx, ctx.imageTar))), img(ctx)));
  add('non-UTF-8 name', 'package.path_escape', (ctx) =>
    archive(m(ctx), img(ctx), craftEntry({ name: '', nameBytes: Buffer.from([0x6d, 0xff, 0xfe]) }, Buffer.from('x'))));
  add('pax path escaping', 'package.path_escape', (ctx) => {
    const man = Buffer.from(manifestText(ctx, ctx.imageTar));
    return archive(file('PaxHeaders/manifest.toml', paxBody({ path: '../../etc/cron.d/x' }), { typeflag: 'x' }), file('manifest.toml', man), img(ctx));
  });

  // --- extended headers that disagree with the plain header ---
  add('pax path mismatch', 'package.header_mismatch', (ctx) =>
    archive(file('PaxHeaders/x', paxBody({ path: 'image.tar' }), { typeflag: 'x' }), m(ctx), img(ctx)));
  add('pax size mismatch', 'package.header_mismatch', (ctx) => {
    const man = Buffer.from(manifestText(ctx, ctx.imageTar));
    return archive(file('PaxHeaders/x', paxBody({ size: String(man.length + 512) }), { typeflag: 'x' }), file('manifest.toml', man), img(ctx));
  });
  add('GNU long name mismatch', 'package.header_mismatch', (ctx) =>
    archive(file('././@LongLink', 'image.tar\0', { typeflag: 'L', format: 'gnu' }), file('manifest.toml', manifestText(ctx, ctx.imageTar), { format: 'gnu' }), img(ctx)));
  add('two pax headers for one entry', 'package.header_mismatch', (ctx) =>
    archive(
      file('PaxHeaders/a', paxBody({ path: 'manifest.toml' }), { typeflag: 'x' }),
      file('PaxHeaders/b', paxBody({ path: 'manifest.toml' }), { typeflag: 'x' }),
      m(ctx),
      img(ctx),
    ));
  add('regular file with a link target', 'package.header_mismatch', (ctx) =>
    archive(file('manifest.toml', manifestText(ctx, ctx.imageTar), { linkname: '/etc/passwd' }), img(ctx)));

  // --- entries ---
  add('duplicate manifest.toml', 'package.duplicate_entry', (ctx) => archive(m(ctx), img(ctx), m(ctx)));
  add('duplicate image (image.tar and image.tar.gz)', 'package.duplicate_entry', (ctx) =>
    archive(m(ctx), img(ctx), file('image.tar.gz', gzipSync(ctx.imageTar))));

  // --- compressed images: never inflated before the signature and pins are checked ---
  add('gzip bomb, unsigned, on a device with trusted keys', 'signature.missing', (ctx) => gzipPackageBytes(ctx, gzipBomb(256)), true);
  add('gzip bomb, signed, pins of another image', 'integrity.sha256_mismatch', (ctx) =>
    validPackageBytes(ctx, {
      image: gzipBomb(256),
      imageName: 'image.tar.gz',
      manifest: manifestText(ctx, ctx.imageTar, { pins: `sha256 = "${sha256(ctx.imageTar)}"\nsize = ${gzipBomb(256).length}\n` }),
      signWith: ctx.trustedPrivateKeyPem,
    }), true);
  add('gzip bomb, unsigned, no trusted keys (inflation capped at 20x)', 'image.too_large', (ctx) => gzipPackageBytes(ctx, gzipBomb(256)));
  add('gzip image with bytes after its stream', 'image.invalid', (ctx) =>
    gzipPackageBytes(ctx, Buffer.concat([gzipSync(ctx.imageTar), Buffer.alloc(512)])));
  add('duplicate signature', 'package.duplicate_entry', (ctx) =>
    archive(m(ctx), img(ctx), file('manifest.toml.sig', 'AAAA\n'), file('manifest.toml.sig', 'AAAA\n')));
  add('unknown root entry install.sh', 'package.unexpected_entry', (ctx) => archive(m(ctx), img(ctx), file('install.sh', '#!/bin/sh\nreboot\n')));
  add('entry named ./manifest.toml', 'package.unexpected_entry', (ctx) =>
    archive(file('./manifest.toml', manifestText(ctx, ctx.imageTar)), img(ctx)));
  add('nested sub/manifest.toml', 'package.unexpected_entry', (ctx) => archive(m(ctx), img(ctx), file('sub/manifest.toml', 'x')));

  // --- the tar stream itself ---
  add('truncated inside image data', 'package.truncated', (ctx) => {
    const whole = validPackageBytes(ctx);
    return whole.subarray(0, 512 * 3 + Math.floor(ctx.imageTar.length / 2));
  });
  add('missing end-of-archive blocks', 'package.truncated', (ctx) => {
    const whole = validPackageBytes(ctx);
    return whole.subarray(0, whole.length - 1024);
  });
  add('only one end-of-archive block', 'package.truncated', (ctx) => {
    const whole = validPackageBytes(ctx);
    return whole.subarray(0, whole.length - 512);
  });
  add('trailing garbage after the end', 'package.trailing_garbage', (ctx) =>
    Buffer.concat([validPackageBytes(ctx), Buffer.from('#!/bin/sh\nreboot\n')]));
  add('second archive appended after the end', 'package.trailing_garbage', (ctx) =>
    Buffer.concat([validPackageBytes(ctx), archive(file('evil', 'x'))]));
  add('bad header checksum', 'package.not_tar', (ctx) => {
    const b = Buffer.from(validPackageBytes(ctx));
    b[0] = 'n'.charCodeAt(0); // name changed after the checksum was computed
    return b;
  });
  add('not a tar at all', 'package.not_tar', () => Buffer.from('this is not a package\n'.repeat(100)));
  add('empty file', 'package.not_tar', () => Buffer.alloc(0));
  add('v7 header without ustar magic', 'package.not_tar', (ctx) => {
    const b = Buffer.from(validPackageBytes(ctx));
    b.fill(0, 257, 265);
    setChecksum(b.subarray(0, 512));
    return b;
  });
  add('lone zero block between entries', 'package.not_tar', (ctx) => Buffer.concat([m(ctx), Buffer.alloc(512), img(ctx), tarEnd()]));
  add('huge declared size (2^40 bytes)', 'package.entry_too_large', (ctx) =>
    Buffer.concat([m(ctx), header({ name: 'image.tar', size: 2 ** 40 }), ctx.imageTar.subarray(0, 4096)]));
  add('signature larger than 4 KiB', 'package.entry_too_large', (ctx) => archive(m(ctx), img(ctx), file('manifest.toml.sig', 'A'.repeat(5000))));
  add('oversized pax header', 'package.entry_too_large', (ctx) =>
    archive(file('PaxHeaders/x', paxBody({ comment: 'x'.repeat(70 * 1024) }), { typeflag: 'x' }), m(ctx), img(ctx)));

  // --- missing parts ---
  add('missing manifest', 'package.missing_manifest', (ctx) => archive(img(ctx)));
  add('missing image', 'package.missing_image', (ctx) => archive(m(ctx)));
  add('nothing but the end blocks', 'package.missing_manifest', () => tarEnd());

  // --- the manifest ---
  add('manifest of 65 KiB', 'manifest.too_large', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar) + `# ${'x'.repeat(65 * 1024)}\n`));
  add('manifest not UTF-8', 'manifest.not_utf8', (ctx) =>
    withManifest(ctx, Buffer.concat([Buffer.from(manifestText(ctx, ctx.imageTar)), Buffer.from('# \xff\xfe\n', 'latin1')])));
  add('manifest invalid TOML', 'manifest.invalid_toml', (ctx) => withManifest(ctx, manifestText(ctx, ctx.imageTar).replace('[target]', '[target')));
  add('manifest duplicate key', 'manifest.invalid_toml', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { extraTop: 'package_version = "9.9.9"\n' })));
  add('manifest unknown key', 'manifest.invalid', (ctx) => withManifest(ctx, manifestText(ctx, ctx.imageTar, { extraTop: 'run_as_root = true\n' })));
  add('manifest 2^60 integer', 'manifest.invalid', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { pins: `sha256 = "${sha256(ctx.imageTar)}"\nsize = 1152921504606846976\n` })));
  add('manifest bad semver', 'manifest.invalid', (ctx) => withManifest(ctx, manifestText(ctx, ctx.imageTar, { package_version: '"1.2"' })));
  add('manifest reference with $(reboot)', 'manifest.invalid', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { reference: '"caisson-pkgtest/hostile:$(reboot)"' })));
  add('manifest reference with a digest', 'manifest.invalid', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { reference: `"caisson-pkgtest/hostile@sha256:${'a'.repeat(64)}"` })));
  add('manifest service name with ../', 'manifest.invalid', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { service: '"../hostile-svc"' })));
  add('manifest upper-case sha256', 'manifest.invalid', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { pins: `sha256 = "${sha256(ctx.imageTar).toUpperCase()}"\nsize = ${ctx.imageTar.length}\n` })));
  add('manifest created_at not RFC 3339', 'manifest.invalid', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { created_at: '"2026-02-30T10:00:00Z"' })));
  add('manifest expires_at before issued_at', 'manifest.invalid', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { extraTop: 'expires_at = "2026-03-16T18:29:59Z"\n' })));
  add('manifest device_ids with $(reboot)', 'manifest.invalid', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { platform: `${JSON.stringify(ctx.service.platform)}\ndevice_ids = ["$(reboot)"]` })));
  add('package for another device class', 'manifest.not_for_this_device', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { platform: `${JSON.stringify(ctx.service.platform)}\ndevice_class = "other-class"` })));
  add('manifest format_version as string', 'manifest.invalid', (ctx) => withManifest(ctx, manifestText(ctx, ctx.imageTar, { format_version: '"1"' })));
  add('manifest format_version 2', 'manifest.unsupported_format', (ctx) => withManifest(ctx, manifestText(ctx, ctx.imageTar, { format_version: '2' })));
  add('manifest package_type bundle', 'manifest.unsupported_type', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { package_type: '"bundle"' })));
  add('manifest package_type stack with a service package\'s keys', 'manifest.invalid', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { package_type: '"stack"' })));

  // --- the device ---
  add('unknown service', 'manifest.unknown_service', (ctx) => withManifest(ctx, manifestText(ctx, ctx.imageTar, { service: '"not-on-this-device"' })));
  add('wrong service revision', 'manifest.revision_mismatch', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { service_revision: '"hostile-v0"' })));
  add('wrong platform', 'manifest.platform_mismatch', (ctx) => withManifest(ctx, manifestText(ctx, ctx.imageTar, { platform: '"linux/arm64"' })));
  add('updater too old', 'manifest.updater_too_old', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { min_updater_version: '"99.0.0"' })));

  // --- integrity and the image ---
  add('image sha256 mismatch', 'integrity.sha256_mismatch', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { pins: `sha256 = "${'0'.repeat(64)}"\nsize = ${ctx.imageTar.length}\n` })));
  add('image size mismatch', 'integrity.size_mismatch', (ctx) =>
    withManifest(ctx, manifestText(ctx, ctx.imageTar, { pins: `sha256 = "${sha256(ctx.imageTar)}"\nsize = ${ctx.imageTar.length + 1}\n` })));
  add('image byte flipped', 'integrity.sha256_mismatch', (ctx) => {
    const man = manifestText(ctx, ctx.imageTar);
    const bad = Buffer.from(ctx.imageTar);
    bad[bad.length >> 1] = (bad[bad.length >> 1] as number) ^ 0xff;
    return validPackageBytes(ctx, { manifest: man, image: bad });
  });
  add('image.tar not a docker save', 'image.invalid', (ctx) => {
    const image = archive(file('hello.txt', 'hello\n'));
    return withManifest(ctx, manifestText(ctx, image), image);
  });
  add('image.tar not a tar', 'image.invalid', (ctx) => {
    const image = Buffer.from('MZ not a tar at all\n'.repeat(64));
    return withManifest(ctx, manifestText(ctx, image), image);
  });
  add('image with another reference', 'image.reference_mismatch', (ctx) => {
    const image = rewriteImageManifest(ctx.imageTar, (doc) => doc.map((e) => ({ ...e, RepoTags: ['caisson-pkgtest/other:6.6.6'] })));
    return withManifest(ctx, manifestText(ctx, image), image);
  });
  add('image retagging a second reference', 'image.reference_mismatch', (ctx) => {
    const image = rewriteImageManifest(ctx.imageTar, (doc) => doc.map((e) => ({ ...e, RepoTags: [ctx.imageRef, 'busybox:latest'] })));
    return withManifest(ctx, manifestText(ctx, image), image);
  });
  add('image for another platform', 'image.platform_mismatch', (ctx) => {
    const image = craftTar(ociImage({ ref: ctx.imageRef, platform: { os: 'linux', architecture: 'arm64' } }).entries);
    return withManifest(ctx, manifestText(ctx, image), image);
  });
  add('two images in image.tar', 'image.invalid', (ctx) => {
    const image = rewriteImageManifest(ctx.imageTar, (doc) => [...doc, { ...doc[0], RepoTags: ['caisson-pkgtest/second:1.0.0'] }]);
    return withManifest(ctx, manifestText(ctx, image), image);
  });

  // --- signatures (trusted keys configured) ---
  add('unsigned with trusted keys configured', 'signature.missing', (ctx) => validPackageBytes(ctx), true);
  add('signed by an untrusted key', 'signature.invalid', (ctx) => validPackageBytes(ctx, { signWith: ctx.otherPrivateKeyPem }), true);
  add('manifest changed after signing', 'signature.invalid', (ctx) => {
    const signedText = manifestText(ctx, ctx.imageTar);
    const changed = signedText.replace('"1.0.0"', '"1.0.1"');
    return validPackageBytes(ctx, { manifest: changed, signWith: ctx.trustedPrivateKeyPem, signBytes: Buffer.from(signedText) });
  }, true);
  add('signature not base64', 'signature.invalid', (ctx) =>
    archive(m(ctx), img(ctx), file('manifest.toml.sig', '$(reboot)\n')), true);
  add('signed manifest without image pins', 'signature.unpinned_image', (ctx) =>
    validPackageBytes(ctx, { manifest: manifestText(ctx, ctx.imageTar, { pins: '' }), signWith: ctx.trustedPrivateKeyPem }), true);
  add('signed manifest without issued_at', 'signature.no_issued_at', (ctx) =>
    validPackageBytes(ctx, { manifest: manifestText(ctx, ctx.imageTar, { issued_at: '' }), signWith: ctx.trustedPrivateKeyPem }), true);
  add('signed package that expired in 2000', 'policy.expired', (ctx) =>
    validPackageBytes(ctx, { manifest: manifestText(ctx, ctx.imageTar, { issued_at: '"1999-12-31T00:00:00Z"', extraTop: 'expires_at = "2000-01-01T00:00:00Z"\n' }), signWith: ctx.trustedPrivateKeyPem }), true);
  add('signed, pinned, image swapped', 'integrity.sha256_mismatch', (ctx) => {
    // the same image in other bytes: manifest.json written again, RepoTags first
    const other = rewriteImageManifest(ctx.imageTar, (doc) => doc.map((e) => ({ RepoTags: [ctx.imageRef], ...e })));
    const man = manifestText(ctx, ctx.imageTar, { pins: `sha256 = "${sha256(ctx.imageTar)}"\nsize = ${other.length}\n` });
    return validPackageBytes(ctx, { manifest: man, image: other, signWith: ctx.trustedPrivateKeyPem });
  }, true);

  // --- the file system object itself ---
  cases.push({
    name: 'FIFO named x.edgepkg',
    expectCode: 'package.not_regular_file',
    build: (dir) => {
      mkdirSync(dir, { recursive: true });
      const path = join(dir, 'fifo.edgepkg');
      execFileSync('mkfifo', [path]);
      return path;
    },
  });
  cases.push({
    name: 'directory named x.edgepkg',
    expectCode: 'package.not_regular_file',
    build: (dir) => {
      const path = join(dir, 'dir.edgepkg');
      mkdirSync(path, { recursive: true });
      writeFileSync(join(path, 'manifest.toml'), 'x');
      return path;
    },
  });
  cases.push({
    name: 'symlink named x.edgepkg to a valid package',
    expectCode: 'package.not_regular_file',
    build: (dir, ctx) => {
      const target = write(dir, 'symlink-target.edgepkg', validPackageBytes(ctx));
      const path = join(dir, 'symlink.edgepkg');
      symlinkSync(target, path);
      return path;
    },
  });
  cases.push({
    name: 'package file does not exist',
    expectCode: 'package.not_found',
    build: (dir) => {
      mkdirSync(dir, { recursive: true });
      return join(dir, 'missing.edgepkg');
    },
  });
  return cases;
}
