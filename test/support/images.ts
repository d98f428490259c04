// Test images built locally from busybox-static (no registry can be reached).
// Every image and container made by tests carries the label caisson.test=1 so that
// cleanupTestObjects() can remove exactly what tests created.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { judgeLoadedImage, type ImageArchiveInfo, type LoadedImage } from '../../agent/package/image-archive.js';

export const TEST_LABEL = 'caisson.test=1';

/**
 * Image IDs buildTestImage made here, by reference. A rollback or a tag restore untags an
 * image (Caisson never deletes one), so removing a test's references alone leaves the image
 * it built, and loaded again from a package, behind as a dangling `<none>`.
 */
const builtIds = new Map<string, string>();

/**
 * How the image behaves when started:
 * - healthy: busybox httpd on :8080 serving /health and /version.
 * - exit: exits with status 1 at once.
 * - no-health: serves /version but /health answers 404.
 * - crashloop: serves /health for `crashAfterSecs` seconds, then exits 1.
 * - unhealthy-healthcheck: healthy httpd, but the image HEALTHCHECK always fails.
 */
export type TestImageBehaviour = 'healthy' | 'exit' | 'no-health' | 'crashloop' | 'unhealthy-healthcheck';

export interface TestImageOptions {
  ref: string;
  version: string;
  behaviour?: TestImageBehaviour;
  crashAfterSecs?: number;
  /** Add a Docker HEALTHCHECK (wget of /health) to the image. */
  healthcheck?: boolean;
  /** Extra bytes of incompressible data in a layer, for size tests. */
  paddingBytes?: number;
  /** The image's test label (default caisson.test=1; the runtime tests tell theirs apart). */
  label?: string;
}

/** Remember an image a test built some other way (FROM a test image), for removeTestImages. */
export function rememberTestImage(ref: string, id: string): void {
  builtIds.set(ref, id);
}

export function buildTestImage(opts: TestImageOptions): string {
  const behaviour = opts.behaviour ?? 'healthy';
  const ctx = mkdtempSync(join(tmpdir(), 'caisson-img-'));
  try {
    const root = join(ctx, 'rootfs');
    mkdirSync(join(root, 'bin'), { recursive: true });
    mkdirSync(join(root, 'www'), { recursive: true });
    mkdirSync(join(root, 'tmp'), { recursive: true });
    mkdirSync(join(root, 'data'), { recursive: true });
    copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
    for (const applet of ['sh', 'httpd', 'sleep', 'wget', 'cat', 'echo', 'ls', 'env', 'touch', 'true', 'false']) {
      // busybox picks the applet from argv[0]; a small shell script keeps the rootfs link-free
      writeFileSync(join(root, 'bin', applet), `#!/bin/busybox sh\nexec /bin/busybox ${applet} "$@"\n`);
      chmodSync(join(root, 'bin', applet), 0o755);
    }
    writeFileSync(join(root, 'www', 'version'), `${opts.version}\n`);
    if (behaviour !== 'no-health') writeFileSync(join(root, 'www', 'health'), 'ok\n');
    if (opts.paddingBytes) {
      const chunk = Buffer.alloc(1024 * 1024);
      const padding = join(root, 'padding.bin');
      writeFileSync(padding, '');
      let left = opts.paddingBytes;
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        randomFillSync(chunk, 0, n);
        writeFileSync(padding, chunk.subarray(0, n), { flag: 'a' });
        left -= n;
      }
    }
    const cmd = `CMD ${JSON.stringify(commandFor(behaviour, opts.crashAfterSecs ?? 3))}`;
    if (opts.healthcheck || behaviour === 'unhealthy-healthcheck') {
      // `docker import --change` takes no HEALTHCHECK: only these images need a build
      const target = behaviour === 'unhealthy-healthcheck' ? 'missing' : 'health';
      const lines = ['FROM scratch', 'COPY rootfs /', 'ENV PATH=/bin', 'EXPOSE 8080'];
      lines.push(`HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD ["/bin/busybox","wget","-q","-O","/dev/null","http://127.0.0.1:8080/${target}"]`, cmd);
      writeFileSync(join(ctx, 'Dockerfile'), lines.join('\n') + '\n');
      execFileSync('docker', ['build', '-q', '--label', opts.label ?? TEST_LABEL, '-t', opts.ref, ctx], { stdio: ['ignore', 'pipe', 'pipe'] });
    } else {
      // one import instead of a build: the legacy builder makes and commits a container per
      // Dockerfile line, three times the engine's work for the same one-layer image
      const tarball = join(ctx, 'rootfs.tar');
      execFileSync('tar', ['-C', root, '--numeric-owner', '--owner=0', '--group=0', '-cf', tarball, '.']);
      const changes = [`LABEL ${opts.label ?? TEST_LABEL}`, 'ENV PATH=/bin', 'EXPOSE 8080', cmd].flatMap((c) => ['--change', c]);
      execFileSync('docker', ['import', ...changes, tarball, opts.ref], { stdio: ['ignore', 'pipe', 'pipe'] });
    }
    const id = imageId(opts.ref);
    builtIds.set(opts.ref, id);
    return id;
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

function commandFor(behaviour: TestImageBehaviour, crashAfterSecs: number): string[] {
  switch (behaviour) {
    case 'exit':
      return ['/bin/busybox', 'sh', '-c', 'echo failing on purpose; exit 1'];
    case 'crashloop':
      return ['/bin/busybox', 'sh', '-c', `/bin/busybox httpd -p 8080 -h /www; /bin/busybox sleep ${crashAfterSecs}; exit 1`];
    default:
      return ['/bin/busybox', 'httpd', '-f', '-p', '8080', '-h', '/www'];
  }
}

export function imageId(ref: string): string {
  return execFileSync('docker', ['image', 'inspect', '-f', '{{.Id}}', ref], { encoding: 'utf8' }).trim();
}

/** `docker image inspect` of one reference, parsed. */
export function inspectImage(ref: string): Record<string, any> {
  return JSON.parse(execFileSync('docker', ['image', 'inspect', ref], { encoding: 'utf8' }))[0];
}

/**
 * Does the engine's image `ref` match what an archive pinned (the config digest on the
 * classic store; layers, platform and settings on the containerd store)? Undefined if so.
 */
export function differsFromArchive(ref: string, pinned: ImageArchiveInfo | undefined): string | undefined {
  if (!pinned) return 'the archive pinned nothing';
  return judgeLoadedImage(inspectImage(ref) as LoadedImage, pinned);
}

/** The engine's image store: Docker's classic one (graph drivers) or containerd's snapshotters. */
export function imageStore(): 'classic' | 'containerd' {
  const status = execFileSync('docker', ['info', '-f', '{{json .DriverStatus}}'], { encoding: 'utf8' });
  return status.includes('io.containerd.snapshotter') ? 'containerd' : 'classic';
}

export function imageExists(ref: string): boolean {
  return spawnSync('docker', ['image', 'inspect', ref], { stdio: 'ignore' }).status === 0;
}

/** `docker save` of one reference into a file. */
export function saveImage(ref: string, outFile: string): void {
  execFileSync('docker', ['save', '-o', outFile, ref]);
}

export function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export function dockerOk(...args: string[]): boolean {
  return spawnSync('docker', args, { stdio: 'ignore' }).status === 0;
}

/**
 * Remove the given image references and, when namePrefix is given, the test-labelled
 * containers whose names start with it. Never removes by label alone: suites run side by
 * side during development and must not remove each other's objects.
 */
export function cleanupTestObjects(extraRefs: string[] = [], namePrefix?: string): void {
  if (namePrefix) {
    const ids = docker('ps', '-aq', '--filter', `label=${TEST_LABEL}`, '--filter', `name=^/${namePrefix}`).split('\n').filter(Boolean);
    if (ids.length) spawnSync('docker', ['rm', '-f', '-v', ...new Set(ids)], { stdio: 'ignore' });
  }
  removeTestImages(extraRefs);
}

/**
 * Remove image references, then the images behind them (as they are now, and as
 * buildTestImage built them) once nothing tags them any more: what a rollback untagged goes
 * too, while an image another reference still names, or a container still uses, stays.
 * An image ID ("sha256:…", e.g. of a crafted archive a test loaded) is removed on the same
 * terms: only when nothing tags it.
 */
export function removeTestImages(refsAndIds: string[]): void {
  // one docker command per step for all references, not one per reference: each docker CLI
  // start costs the suite ~60 ms of CPU, and a cleanup names dozens of references
  const ids = new Set<string>(refsAndIds.filter((r) => r.startsWith('sha256:')));
  const refs = refsAndIds.filter((r) => !r.startsWith('sha256:'));
  for (const ref of refs) {
    const built = builtIds.get(ref);
    if (built) ids.add(built);
  }
  if (refs.length) {
    // references that do not exist only add an error line on stderr
    for (const id of inspectExisting(['image', 'inspect', '-f', '{{.Id}}', ...refs])) ids.add(id);
    spawnSync('docker', ['rmi', '-f', ...refs], { stdio: 'ignore' });
  }
  if (ids.size === 0) return;
  const untagged = inspectExisting(['image', 'inspect', '-f', '{{.Id}} {{len .RepoTags}}', ...ids])
    .map((line) => line.split(' '))
    .filter(([, tags]) => tags === '0')
    .map(([id]) => id!);
  if (untagged.length) spawnSync('docker', ['rmi', ...untagged], { stdio: 'ignore' });
}

/**
 * The lines `docker … inspect -f FORMAT NAME…` prints for the objects that exist: one docker
 * command for many objects (it exits 1 if any does not, and says so on stderr).
 */
export function inspectExisting(args: string[]): string[] {
  const r = spawnSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return (r.stdout ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
}
