// Helpers for the runtime and health integration tests (real dockerd, local images only).
// Every object these tests make is named caisson-rt-*; host ports are 18100–18199.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTestImage, docker, rememberTestImage, removeTestImages, type TestImageOptions } from '../../support/images.js';

export { docker, dockerOk, buildTestImage, imageId } from '../../support/images.js';
export { httpGet, waitForBody } from '../../support/http.js';

/**
 * Test images carry caisson.test=1, and other suites' cleanups remove every container with
 * that label. Containers made here override it, so only our own name-prefix cleanup removes them.
 */
export const OWN_LABEL = ['--label', 'caisson.test=rt'];

/**
 * buildTestImage, labelled caisson.test=rt, so that these tests' objects are told apart
 * from other suites' on a shared engine.
 */
export function buildOwnImage(opts: TestImageOptions): string {
  return buildTestImage({ ...opts, label: 'caisson.test=rt' });
}

/** Build an image FROM base with extra Dockerfile lines (ENV, LABEL, HEALTHCHECK, …). */
export function deriveImage(base: string, ref: string, lines: string[]): string {
  const ctx = mkdtempSync(join(tmpdir(), 'caisson-rt-img-'));
  try {
    writeFileSync(join(ctx, 'Dockerfile'), [`FROM ${base}`, ...lines].join('\n') + '\n');
    execFileSync('docker', ['build', '-q', '-t', ref, ctx], { stdio: ['ignore', 'pipe', 'pipe'] });
    const id = docker('image', 'inspect', '-f', '{{.Id}}', ref);
    rememberTestImage(ref, id);
    return id;
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

export function inspectJson(name: string): Record<string, any> {
  return JSON.parse(docker('inspect', name))[0];
}

/** Names of all containers whose name starts with prefix. */
export function containerNames(prefix: string): string[] {
  return docker('ps', '-a', '--format', '{{.Names}}', '--filter', `name=^/${prefix}`)
    .split('\n')
    .filter(Boolean)
    .sort();
}

/**
 * Remove containers by name prefix with the anonymous volumes they mount, then the named
 * images, networks and volumes (each by exact name). `rm -v` alone is not enough: a
 * recreated container mounts its predecessor's anonymous volume by name (runtime.md), and
 * the engine removes only volumes a container created itself.
 */
export function cleanup(opts: { containerPrefix: string; images?: string[]; networks?: string[]; volumes?: string[] }): void {
  const ids = docker('ps', '-aq', '--filter', `name=^/${opts.containerPrefix}`).split('\n').filter(Boolean);
  const anonymous = ids.length
    ? docker('inspect', '-f', '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}', ...ids)
        .split(/\s+/)
        .filter((name) => /^[0-9a-f]{64}$/.test(name))
    : [];
  if (ids.length) spawnSync('docker', ['rm', '-f', '-v', ...ids], { stdio: 'ignore' });
  for (const v of new Set(anonymous)) spawnSync('docker', ['volume', 'rm', v], { stdio: 'ignore' });
  for (const n of opts.networks ?? []) spawnSync('docker', ['network', 'rm', n], { stdio: 'ignore' });
  for (const v of opts.volumes ?? []) spawnSync('docker', ['volume', 'rm', '-f', v], { stdio: 'ignore' });
  removeTestImages(opts.images ?? []);
}

/** Checkpoints as the pipeline would journal them; optionally "crash" right before one step. */
export function recorder(crashAt?: string): { steps: string[]; checkpoint: (step: string) => void } {
  const steps: string[] = [];
  return {
    steps,
    checkpoint(step: string) {
      if (step === crashAt) throw new Error(`simulated crash before ${step}`);
      steps.push(step);
    },
  };
}
