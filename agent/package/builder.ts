// Build an .edgepkg from a local image: `docker save` (through dockerode) into a temporary
// file while hashing it and reading it with the same strict rules devices apply, then write the package (manifest.toml,
// image.tar, optional manifest.toml.sig) to a temporary file, fsync it and rename it into place.
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type Docker from 'dockerode';
import { CaissonError, describe, toCaissonError } from '../errors.js';
import { connectDocker } from '../runtime/docker-client.js';
import { DEVICE_CLASS_PATTERN, DEVICE_ID_PATTERN, IMAGE_REFERENCE_PATTERN, NAME_PATTERN, PLATFORM_PATTERN, SEMVER_PATTERN } from '../config/patterns.js';
import { packageIdOf } from './identity.js';
import { judgeLoadedImage, type ImageArchiveInfo, type LoadedImage } from './image-archive.js';
import { isRfc3339, MAX_TARGET_DEVICE_IDS, renderManifest, rfc3339Millis } from './manifest.js';
import { ImageArchiveInspector } from './image-inspector.js';
import { READ_CHUNK } from './source.js';
import { signManifest } from './signature.js';
import { tarEnd, tarHeader, tarPadding } from './tar-stream.js';
import type { DeviceTargetKeys, FreshnessKeys, Manifest } from './types.js';
import { UPDATER_VERSION } from '../version.js';

export interface BuildOptions {
  imageRef: string;
  service: string;
  serviceRevision: string;
  platform: string;
  version: string;
  out: string;
  minUpdaterVersion?: string | undefined;
  signKeyPath?: string | undefined;
  dockerSocket?: string | undefined;
  /** RFC 3339; now (UTC, whole seconds) by default. Also the package's issued_at. */
  createdAt?: string | undefined;
  /** expires_at, RFC 3339 (not with expiresIn). */
  expiresAt?: string | undefined;
  /** expires_at as a time after issued_at: "30d", "12h", "90m", "3600s", "2w" (not with expiresAt). */
  expiresIn?: string | undefined;
  /** target.device_class: only devices of this class (agent.toml) take the package. */
  deviceClass?: string | undefined;
  /** target.device_ids: only these devices (`caisson device show`) take the package. */
  deviceIds?: readonly string[] | undefined;
}

export interface BuildResult {
  out: string;
  /** The package's identity, as devices will record it (identity.ts). */
  packageId: string;
  imageSha256: string;
  imageSize: number;
}

export async function buildPackage(opts: BuildOptions): Promise<BuildResult> {
  checkInput(opts.imageRef, IMAGE_REFERENCE_PATTERN, '--image', 'a tagged image reference like example/app:1.2.3');
  checkInput(opts.service, NAME_PATTERN, '--service', 'a service name from services.toml');
  checkInput(opts.serviceRevision, NAME_PATTERN, '--service-revision', 'the catalog service_revision');
  checkInput(opts.platform, PLATFORM_PATTERN, '--platform', 'like linux/amd64');
  checkInput(opts.version, SEMVER_PATTERN, '--version', 'a semantic version like 1.2.3');
  const minUpdater = opts.minUpdaterVersion ?? UPDATER_VERSION;
  checkInput(minUpdater, SEMVER_PATTERN, '--min-updater-version', 'a semantic version');
  const issuedAt = opts.createdAt ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const freshness = freshnessKeys(issuedAt, opts);
  const deviceTarget = deviceTargetKeys(opts);
  const signKey = opts.signKeyPath ? await readKey(opts.signKeyPath) : undefined;

  const docker = connectDocker(opts.dockerSocket);
  const image = docker.getImage(opts.imageRef);
  let inspect: Docker.ImageInspectInfo;
  try {
    inspect = await image.inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) {
      throw new CaissonError('usage.invalid', `image ${opts.imageRef} is not in the local Docker engine`, {
        next: 'Build or load the image first (`docker images` lists what is there), then build the package.',
      });
    }
    throw toCaissonError(err, 'docker.error');
  }
  const imagePlatform = [inspect.Os, inspect.Architecture, (inspect as { Variant?: string }).Variant].filter(Boolean).join('/');
  if (imagePlatform !== opts.platform && `${inspect.Os}/${inspect.Architecture}` !== opts.platform) {
    throw new CaissonError('usage.invalid', `image ${opts.imageRef} is for ${imagePlatform}, not ${opts.platform}`, {
      next: 'Build the image for the device platform, or pass the right --platform.',
    });
  }

  const outDir = dirname(opts.out);
  const tag = randomBytes(6).toString('hex');
  const imageTmp = join(outDir, `.${basename(opts.out)}.image-${tag}.tmp`);
  const pkgTmp = join(outDir, `.${basename(opts.out)}.${tag}.tmp`);
  try {
    const saved = await saveImage(image, imageTmp, opts.imageRef);
    // the engine's ID is the config digest on the classic store, a manifest digest on the
    // containerd store: judge the saved archive by what it pins, as devices will
    const differs = judgeLoadedImage(inspect as unknown as LoadedImage, saved.info);
    if (differs) {
      throw new CaissonError('docker.error', `docker save of ${opts.imageRef} produced another image than ${inspect.Id} (the tag moved?): ${differs}`);
    }
    const manifest: Manifest = {
      format_version: 1,
      package_type: 'service',
      package_version: opts.version,
      created_at: issuedAt,
      ...freshness,
      target: { service: opts.service, service_revision: opts.serviceRevision, platform: opts.platform, ...deviceTarget },
      image: { reference: opts.imageRef, sha256: saved.sha256, size: saved.size },
      compatibility: { min_updater_version: minUpdater },
    };
    let manifestText: string;
    try {
      manifestText = renderManifest(manifest);
    } catch (err) {
      throw new CaissonError('usage.invalid', `the manifest would be invalid: ${describe(err)}`);
    }
    const manifestBytes = Buffer.from(manifestText, 'utf8');
    const sig = signKey ? Buffer.from(signManifest(manifestBytes, signKey) + '\n', 'ascii') : undefined;
    await writePackage(pkgTmp, manifestBytes, imageTmp, saved.size, sig);
    await rename(pkgTmp, opts.out);
    await syncDir(outDir);
    return { out: opts.out, packageId: packageIdOf(manifestBytes, 'image.tar', saved.sha256), imageSha256: saved.sha256, imageSize: saved.size };
  } catch (err) {
    await unlink(pkgTmp).catch(() => undefined);
    throw toCaissonError(err, 'internal.error');
  } finally {
    await unlink(imageTmp).catch(() => undefined);
  }
}

/** issued_at (the build time) and expires_at from --expires-at or --expires-in. */
function freshnessKeys(issuedAt: string, opts: Pick<BuildOptions, 'expiresAt' | 'expiresIn'>): FreshnessKeys {
  if (!isRfc3339(issuedAt)) throw new CaissonError('usage.invalid', `created_at "${issuedAt.slice(0, 80)}" is not an RFC 3339 date-time`);
  if (opts.expiresAt !== undefined && opts.expiresIn !== undefined) {
    throw new CaissonError('usage.invalid', '--expires-at and --expires-in both say when the package expires: give one');
  }
  let expiresAt = opts.expiresAt;
  if (opts.expiresIn !== undefined) {
    expiresAt = new Date(rfc3339Millis(issuedAt) + parseDuration(opts.expiresIn)).toISOString().replace(/\.000Z$/, 'Z');
  } else if (expiresAt !== undefined && !isRfc3339(expiresAt)) {
    throw new CaissonError('usage.invalid', `--expires-at "${expiresAt.slice(0, 80)}" is not valid: expected an RFC 3339 date-time like 2026-12-31T00:00:00Z`);
  }
  if (expiresAt !== undefined && rfc3339Millis(expiresAt) <= rfc3339Millis(issuedAt)) {
    throw new CaissonError('usage.invalid', `the package would expire (${expiresAt}) before it is issued (${issuedAt})`);
  }
  return expiresAt === undefined ? { issued_at: issuedAt } : { issued_at: issuedAt, expires_at: expiresAt };
}

const DURATION_UNITS_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** "30d" → milliseconds. A whole number and one unit: s, m, h, d or w; at most 100 years. */
export function parseDuration(text: string): number {
  const m = /^([1-9]\d{0,5})([smhdw])$/.exec(text);
  const ms = m ? Number(m[1]) * DURATION_UNITS_MS[m[2]!]! : NaN;
  if (!(ms <= 100 * 366 * 86_400_000)) {
    throw new CaissonError('usage.invalid', `--expires-in "${text.slice(0, 80)}" is not valid: expected a whole number and a unit (s, m, h, d, w), like 30d, at most 100 years`);
  }
  return ms;
}

function deviceTargetKeys(opts: Pick<BuildOptions, 'deviceClass' | 'deviceIds'>): DeviceTargetKeys {
  const out: DeviceTargetKeys = {};
  if (opts.deviceClass !== undefined) {
    checkInput(opts.deviceClass, DEVICE_CLASS_PATTERN, '--device-class', 'a device class like kiosk-v2 ([A-Za-z0-9][A-Za-z0-9_.-]*)');
    out.device_class = opts.deviceClass;
  }
  if (opts.deviceIds !== undefined && opts.deviceIds.length > 0) {
    for (const id of opts.deviceIds) checkInput(id, DEVICE_ID_PATTERN, '--device-id', 'a device ID like k3xq-7h2m-pa4d-9wzt (`caisson device show`)');
    const ids = [...new Set(opts.deviceIds)];
    if (ids.length > MAX_TARGET_DEVICE_IDS) throw new CaissonError('usage.invalid', `at most ${MAX_TARGET_DEVICE_IDS} --device-id values (use --device-class for a fleet)`);
    out.device_ids = ids;
  }
  return out;
}

function checkInput(value: string, pattern: RegExp, flag: string, what: string): void {
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw new CaissonError('usage.invalid', `${flag} "${String(value).slice(0, 80)}" is not valid: expected ${what}`);
  }
}

async function readKey(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new CaissonError('usage.invalid', `cannot read the signing key ${path}: ${describe(err)}`);
  }
}

async function createExclusive(path: string): Promise<FileHandle> {
  try {
    return await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CaissonError(code === 'ENOSPC' ? 'disk.insufficient' : 'usage.invalid', `cannot create ${path}: ${describe(err)}`);
  }
}

async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  let off = 0;
  while (off < data.length) off += (await fh.write(data, off, data.length - off)).bytesWritten;
}

/** `docker save` into `path`, hashing and inspecting the stream as it goes. */
async function saveImage(
  image: Docker.Image,
  path: string,
  ref: string,
): Promise<{ sha256: string; size: number; info: ImageArchiveInfo }> {
  const out = await createExclusive(path);
  const hash = createHash('sha256');
  const inspector = new ImageArchiveInspector(false);
  let size = 0;
  try {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await image.get();
    } catch (err) {
      throw toCaissonError(err, 'docker.error');
    }
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
      await writeAll(out, chunk);
      await inspector.write(chunk);
    }
    await out.sync();
  } finally {
    await out.close();
  }
  const result = await inspector.finish();
  if (!result.info) throw new CaissonError('docker.error', `docker save of ${ref} did not produce a usable archive: ${result.problem ?? 'unknown'}`);
  if (result.info.repoTags.length !== 1 || result.info.repoTags[0] !== ref) {
    throw new CaissonError('docker.error', `docker save of ${ref} tagged ${JSON.stringify(result.info.repoTags)}`);
  }
  return { sha256: hash.digest('hex'), size, info: result.info };
}

async function writePackage(path: string, manifest: Buffer, imagePath: string, imageSize: number, sig: Buffer | undefined): Promise<void> {
  const out = await createExclusive(path);
  const emit = (b: Buffer): Promise<void> => writeAll(out, b);
  try {
    await emit(tarHeader({ name: 'manifest.toml', size: manifest.length }));
    await emit(manifest);
    await emit(tarPadding(manifest.length));
    await emit(tarHeader({ name: 'image.tar', size: imageSize }));
    const src = await open(imagePath, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    try {
      let copied = 0;
      for (;;) {
        const buf = Buffer.allocUnsafe(READ_CHUNK);
        const { bytesRead } = await src.read(buf, 0, READ_CHUNK, null);
        if (bytesRead === 0) break;
        copied += bytesRead;
        await emit(buf.subarray(0, bytesRead));
      }
      if (copied !== imageSize) throw new CaissonError('internal.error', `the saved image changed size while packing (${copied} != ${imageSize})`);
    } finally {
      await src.close();
    }
    await emit(tarPadding(imageSize));
    if (sig) {
      await emit(tarHeader({ name: 'manifest.toml.sig', size: sig.length }));
      await emit(sig);
      await emit(tarPadding(sig.length));
    }
    await emit(tarEnd());
    await out.sync();
  } finally {
    await out.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
