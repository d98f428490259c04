// Build an .edgepkg from local images: `docker save` (through dockerode) into a temporary
// file while hashing it and reading it with the same strict rules devices apply, then write
// the package (manifest.toml, image.tar, optional manifest.toml.sig) to a temporary file,
// fsync it and rename it into place. A service package holds one image; a stack package the
// images of all its services, saved together. With --encrypt-to, image.tar is encrypted for
// those recipients first (encryption.ts) and travels as image.tar.age; the manifest pins both
// it and the plain image.tar.
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
import { ENCRYPTED_SUFFIX, ENCRYPTION_SCHEME, MAX_RECIPIENTS, parseRecipient, startEncryption } from './encryption.js';
import { deviceIdFor } from '../device/identity.js';
import { isRfc3339, MAX_TARGET_DEVICE_IDS, renderManifest, rfc3339Millis } from './manifest.js';
import { ImageArchiveInspector } from './image-inspector.js';
import { READ_CHUNK } from './source.js';
import { signManifest } from './signature.js';
import { tarEnd, tarHeader, tarPadding } from './tar-writer.js';
import { MAX_STACK_SERVICES, type Manifest, type ManifestCommon, type DeviceTargetKeys, type FreshnessKeys, type ManifestEncryption, type ServiceManifest, type StackManifest } from './types.js';
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
  /** X25519 public keys (base64, as `caisson device show` prints them) to encrypt the image for. */
  encryptTo?: string[] | undefined;
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
  /** Recipients the image was encrypted for (absent: not encrypted). */
  encryptedFor?: number;
}

export async function buildPackage(opts: BuildOptions): Promise<BuildResult> {
  checkInput(opts.imageRef, IMAGE_REFERENCE_PATTERN, '--image', 'a tagged image reference like example/app:1.2.3');
  checkInput(opts.service, NAME_PATTERN, '--service', 'a service name from services.toml');
  checkInput(opts.serviceRevision, NAME_PATTERN, '--service-revision', 'the catalog service_revision');
  const common = await commonInputs(opts);
  const docker = connectDocker(opts.dockerSocket);
  const inspect = await inspectLocal(docker, opts.imageRef, opts.platform);
  return writeBuilt(opts.out, docker, [opts.imageRef], common, (saved) => {
    savedImageOf(saved, opts.imageRef, inspect);
    const manifest: ServiceManifest = {
      ...common.manifest,
      package_type: 'service',
      target: { service: opts.service, service_revision: opts.serviceRevision, platform: opts.platform, ...common.deviceTarget },
      image: { reference: opts.imageRef, sha256: saved.sha256, size: saved.size },
    };
    return manifest;
  });
}

/** One service of a stack to build: the catalog entry and the local image for it. */
export interface StackMemberInput {
  service: string;
  serviceRevision: string;
  imageRef: string;
  /** This service's version; the stack's version by default. */
  version?: string | undefined;
}

export interface StackBuildOptions extends Omit<BuildOptions, 'imageRef' | 'service' | 'serviceRevision'> {
  /** The stack's name ([stack] name). */
  stack: string;
  /** In switch order (a service after those it depends on). */
  members: StackMemberInput[];
}

/**
 * A stack package: every member's image in ONE `docker save` (shared layers stored once, the
 * package read in one pass), each service pinned to its image's config digest.
 */
export async function buildStackPackage(opts: StackBuildOptions): Promise<BuildResult> {
  checkInput(opts.stack, NAME_PATTERN, '--stack', 'a stack name like shop');
  if (opts.members.length === 0 || opts.members.length > MAX_STACK_SERVICES) {
    throw new CaissonError('usage.invalid', `a stack lists 1 to ${MAX_STACK_SERVICES} services, not ${opts.members.length}`);
  }
  const seen = new Set<string>();
  for (const m of opts.members) {
    checkInput(m.service, NAME_PATTERN, '--member service', 'a service name from services.toml');
    checkInput(m.serviceRevision, NAME_PATTERN, '--member revision', 'the catalog service_revision');
    checkInput(m.imageRef, IMAGE_REFERENCE_PATTERN, '--member image', 'a tagged image reference like example/app:1.2.3');
    if (m.version !== undefined) checkInput(m.version, SEMVER_PATTERN, '--member version', 'a semantic version like 1.2.3');
    if (seen.has(m.service)) throw new CaissonError('usage.invalid', `the stack names service ${m.service} twice`);
    seen.add(m.service);
  }
  const common = await commonInputs(opts);
  const docker = connectDocker(opts.dockerSocket);
  const refs = [...new Set(opts.members.map((m) => m.imageRef))];
  const inspects = new Map<string, Docker.ImageInspectInfo>();
  for (const ref of refs) inspects.set(ref, await inspectLocal(docker, ref, opts.platform));
  return writeBuilt(opts.out, docker, refs, common, (saved) => {
    const manifest: StackManifest = {
      ...common.manifest,
      package_type: 'stack',
      stack: { name: opts.stack, platform: opts.platform },
      image: { sha256: saved.sha256, size: saved.size },
      services: opts.members.map((m) => ({
        service: m.service,
        service_revision: m.serviceRevision,
        version: m.version ?? opts.version,
        reference: m.imageRef,
        image_id: savedImageOf(saved, m.imageRef, inspects.get(m.imageRef)!).imageId,
      })),
    };
    if (Object.keys(common.deviceTarget).length > 0) manifest.target = { ...common.deviceTarget };
    return manifest;
  });
}

interface CommonInputs {
  manifest: ManifestCommon;
  signKey: Buffer | undefined;
  /** X25519 public keys to encrypt the image for; empty: not encrypted. */
  recipients: Buffer[];
  /** [target] device_class / device_ids, when the vendor named any. */
  deviceTarget: DeviceTargetKeys;
}

/** The inputs every package type takes, checked, and the manifest keys they make. */
async function commonInputs(
  opts: Pick<BuildOptions, 'platform' | 'version' | 'minUpdaterVersion' | 'signKeyPath' | 'createdAt' | 'encryptTo' | 'expiresAt' | 'expiresIn' | 'deviceClass' | 'deviceIds'>,
): Promise<CommonInputs> {
  checkInput(opts.platform, PLATFORM_PATTERN, '--platform', 'like linux/amd64');
  checkInput(opts.version, SEMVER_PATTERN, '--version', 'a semantic version like 1.2.3');
  const minUpdater = opts.minUpdaterVersion ?? UPDATER_VERSION;
  checkInput(minUpdater, SEMVER_PATTERN, '--min-updater-version', 'a semantic version');
  const issuedAt = opts.createdAt ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const freshness = freshnessKeys(issuedAt, opts);
  const deviceTarget = deviceTargetKeys(opts);
  const signKey = opts.signKeyPath ? await readKey(opts.signKeyPath) : undefined;
  const recipients = (opts.encryptTo ?? []).map(parseRecipient);
  if (new Set(recipients.map((r) => r.toString('hex'))).size !== recipients.length) {
    throw new CaissonError('usage.invalid', '--encrypt-to names the same key twice');
  }
  if (recipients.length > MAX_RECIPIENTS) throw new CaissonError('usage.invalid', `--encrypt-to names ${recipients.length} keys; at most ${MAX_RECIPIENTS}`);
  return {
    recipients,
    deviceTarget,
    manifest: {
      format_version: 1,
      package_version: opts.version,
      created_at: issuedAt,
      ...freshness,
      compatibility: { min_updater_version: minUpdater },
    },
    signKey,
  };
}

/** `docker image inspect` of a local image, which must be for `platform`. */
async function inspectLocal(docker: Docker, ref: string, platform: string): Promise<Docker.ImageInspectInfo> {
  let inspect: Docker.ImageInspectInfo;
  try {
    inspect = await docker.getImage(ref).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) {
      throw new CaissonError('usage.invalid', `image ${ref} is not in the local Docker engine`, {
        next: 'Build or load the image first (`docker images` lists what is there), then build the package.',
      });
    }
    throw toCaissonError(err, 'docker.error');
  }
  const imagePlatform = [inspect.Os, inspect.Architecture, (inspect as { Variant?: string }).Variant].filter(Boolean).join('/');
  if (imagePlatform !== platform && `${inspect.Os}/${inspect.Architecture}` !== platform) {
    throw new CaissonError('usage.invalid', `image ${ref} is for ${imagePlatform}, not ${platform}`, {
      next: 'Build the image for the device platform, or pass the right --platform.',
    });
  }
  return inspect;
}

interface SavedArchive {
  sha256: string;
  size: number;
  images: ImageArchiveInfo[];
}

/**
 * The saved archive's image tagged `ref`, which must be the image inspected before the save.
 * The engine's ID is the config digest on the classic store, a manifest digest on the
 * containerd store: the archive is judged by what it pins, as a device judges what it loaded.
 */
function savedImageOf(saved: SavedArchive, ref: string, inspect: Docker.ImageInspectInfo): ImageArchiveInfo {
  const info = saved.images.find((i) => i.repoTags.includes(ref));
  if (!info) throw new CaissonError('docker.error', `docker save did not write an image tagged ${ref}`);
  const differs = judgeLoadedImage(inspect as unknown as LoadedImage, info);
  if (differs) {
    throw new CaissonError('docker.error', `docker save of ${ref} produced another image than ${inspect.Id} (the tag moved?): ${differs}`);
  }
  return info;
}

/**
 * Save `refs` in one `docker save`, make the manifest from what was saved, then write the
 * package to a temporary file, fsync it and rename it to `out`.
 */
async function writeBuilt(
  out: string,
  docker: Docker,
  refs: string[],
  { signKey, recipients }: CommonInputs,
  manifestFor: (saved: SavedArchive) => Manifest,
): Promise<BuildResult> {
  const outDir = dirname(out);
  const tag = randomBytes(6).toString('hex');
  const imageTmp = join(outDir, `.${basename(out)}.image-${tag}.tmp`);
  const pkgTmp = join(outDir, `.${basename(out)}.${tag}.tmp`);
  const encTmp = join(outDir, `.${basename(out)}.image-${tag}.age.tmp`);
  try {
    const saved = await saveImages(docker, refs, imageTmp);
    const manifest = manifestFor(saved);
    const encrypted = recipients.length ? await encryptImage(imageTmp, encTmp, recipients) : undefined;
    if (encrypted) manifest.encryption = encrypted;
    let manifestText: string;
    try {
      manifestText = renderManifest(manifest);
    } catch (err) {
      throw new CaissonError('usage.invalid', `the manifest would be invalid: ${describe(err)}`);
    }
    const manifestBytes = Buffer.from(manifestText, 'utf8');
    const sig = signKey ? Buffer.from(signManifest(manifestBytes, signKey) + '\n', 'ascii') : undefined;
    const entry = encrypted
      ? { name: `image.tar${ENCRYPTED_SUFFIX}`, path: encTmp, size: encrypted.size }
      : { name: 'image.tar', path: imageTmp, size: saved.size };
    await writePackage(pkgTmp, manifestBytes, entry, sig);
    await rename(pkgTmp, out);
    await syncDir(outDir);
    const result: BuildResult = { out, packageId: packageIdOf(manifestBytes, 'image.tar', saved.sha256), imageSha256: saved.sha256, imageSize: saved.size };
    if (encrypted) result.encryptedFor = encrypted.recipients.length;
    return result;
  } catch (err) {
    await unlink(pkgTmp).catch(() => undefined);
    throw toCaissonError(err, 'internal.error');
  } finally {
    await unlink(imageTmp).catch(() => undefined);
    await unlink(encTmp).catch(() => undefined);
  }
}

/** Encrypt the saved image into `path` for `recipients`, hashing the encrypted entry as it is written. */
async function encryptImage(imagePath: string, path: string, recipients: Buffer[]): Promise<ManifestEncryption> {
  const { header, sealer } = startEncryption(recipients);
  const out = await createExclusive(path);
  const hash = createHash('sha256');
  let size = 0;
  const emit = async (b: Buffer): Promise<void> => {
    hash.update(b);
    size += b.length;
    await writeAll(out, b);
  };
  try {
    await emit(header);
    const src = await open(imagePath, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    try {
      const buf = Buffer.allocUnsafe(READ_CHUNK);
      for (;;) {
        const { bytesRead } = await src.read(buf, 0, READ_CHUNK, null);
        if (bytesRead === 0) break;
        await emit(sealer.push(buf.subarray(0, bytesRead)));
      }
    } finally {
      await src.close();
    }
    await emit(sealer.finish());
    await out.sync();
  } finally {
    await out.close();
  }
  return { scheme: ENCRYPTION_SCHEME, recipients: recipients.map(deviceIdFor), sha256: hash.digest('hex'), size };
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
    for (const id of opts.deviceIds) checkInput(id, DEVICE_ID_PATTERN, '--device-id', 'a device ID like k3xq-7h2m-pa4d-6wzt (`caisson device show`)');
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

/**
 * One `docker save` of every ref into `path`, hashing and inspecting the stream as it goes.
 * The archive's tags must be exactly `refs`: docker save writes the tags it was asked for.
 */
async function saveImages(docker: Docker, refs: string[], path: string): Promise<SavedArchive> {
  const out = await createExclusive(path);
  const hash = createHash('sha256');
  const inspector = new ImageArchiveInspector(false);
  let size = 0;
  try {
    let stream: NodeJS.ReadableStream;
    try {
      // dockerode: GET /images/get?names=a&names=b (one archive, shared layers once)
      stream = refs.length === 1 ? await docker.getImage(refs[0]!).get() : await (docker as unknown as SaveMany).getImages({ names: refs });
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
  const what = refs.join(', ');
  if (!result.images) throw new CaissonError('docker.error', `docker save of ${what} did not produce a usable archive: ${result.problem ?? 'unknown'}`);
  if (result.images.some((i) => i.repoTags.length === 0)) throw new CaissonError('docker.error', `docker save of ${what} wrote an untagged image`);
  const tags = result.images.flatMap((i) => i.repoTags).sort();
  if (JSON.stringify(tags) !== JSON.stringify([...refs].sort())) {
    throw new CaissonError('docker.error', `docker save of ${what} tagged ${JSON.stringify(tags)}`);
  }
  return { sha256: hash.digest('hex'), size, images: result.images };
}

/** dockerode's getImages (the typings lack it). */
interface SaveMany {
  getImages(opts: { names: string[] }): Promise<NodeJS.ReadableStream>;
}

async function writePackage(
  path: string,
  manifest: Buffer,
  image: { name: string; path: string; size: number },
  sig: Buffer | undefined,
): Promise<void> {
  const { path: imagePath, size: imageSize } = image;
  const out = await createExclusive(path);
  const emit = (b: Buffer): Promise<void> => writeAll(out, b);
  try {
    await emit(tarHeader({ name: 'manifest.toml', size: manifest.length }));
    await emit(manifest);
    await emit(tarPadding(manifest.length));
    await emit(tarHeader({ name: image.name, size: imageSize }));
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
