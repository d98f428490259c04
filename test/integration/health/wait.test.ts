// waitHealthy against real containers: each probe kind reads what a real engine reports (the
// published port, the image HEALTHCHECK's status, exec's exit code and output, an exited
// container's exit code, a restart under a restart policy). The rules themselves (timeouts,
// failing fast, stable windows, ticks, aborts) are test/unit/health/wait.test.ts; the probes
// against local servers are test/unit/health/probes.test.ts.
import assert from 'node:assert/strict';
import { connectDocker } from '../../../agent/runtime/docker-client.js';
import { waitHealthy } from '../../../agent/health/wait.js';
import { CaissonError } from '../../../agent/errors.js';
import type { HealthCheckSpec } from '../../../agent/config/services.js';
import { OWN_LABEL, buildOwnImage, cleanup, deriveImage, docker } from '../runtime/support.js';
import { tmpdir } from 'node:os';
import { createDockerEngine } from '../../../agent/runtime/engine.js';

const P = 'caisson-rt-h-';
const IMG_OK = `${P}ok:1`;
const IMG_HC = `${P}hc:1`;
const IMAGES = [IMG_OK, IMG_HC];
const api = connectDocker();
/** What health checks read, through the engine port. */
const health = createDockerEngine(api, { stateDir: tmpdir() });

let nextPort = 18150;

/** Start a container of `image` (optionally with its own command) with its port 8080 published on a fresh host port. */
function run(image: string, opts: { extra?: string[]; command?: string[] } = {}): { id: string; port: number } {
  const port = nextPort++;
  const name = `${P}${port}`;
  const id = docker('run', '-d', '--pull', 'never', '--name', name, ...OWN_LABEL, '--stop-timeout', '0', '-p', `127.0.0.1:${port}:8080`, ...(opts.extra ?? []), image, ...(opts.command ?? []));
  return { id, port };
}

/** Short windows: what is asserted is what the probe read, not how long it waited. */
function spec(s: Partial<HealthCheckSpec> & Pick<HealthCheckSpec, 'kind'>): HealthCheckSpec {
  return { timeout_secs: 15, poll_interval_secs: 0.2, stable_secs: 0.5, ...s } as HealthCheckSpec;
}

async function failure(p: Promise<unknown>): Promise<CaissonError> {
  const err = await p.then(
    () => new Error('expected a failure'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CaissonError, String(err));
  return err;
}

describe('health/waitHealthy (real containers)', function () {
  this.timeout(120_000);
  /** One healthy busybox httpd serves every probe kind that passes. */
  let ok: { id: string; port: number };

  before(function () {
    cleanup({ containerPrefix: P, images: IMAGES });
    buildOwnImage({ ref: IMG_OK, version: '1' });
    deriveImage(IMG_OK, IMG_HC, ['HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD ["/bin/busybox","wget","-q","-O","/dev/null","http://127.0.0.1:8080/health"]']);
    ok = run(IMG_OK);
  });

  after(function () {
    cleanup({ containerPrefix: P, images: IMAGES });
  });

  it('running: passes for a running container', async function () {
    await waitHealthy(health, ok.id, spec({ kind: 'running' }));
  });

  it('http: passes on 2xx through the published port', async function () {
    await waitHealthy(health, ok.id, spec({ kind: 'http', url: `http://127.0.0.1:${ok.port}/health` }));
  });

  it('tcp: passes when the published port accepts connections', async function () {
    await waitHealthy(health, ok.id, spec({ kind: 'tcp', host: '127.0.0.1', port: ok.port }));
  });

  it('exec: passes when the command exits 0 inside the container', async function () {
    await waitHealthy(health, ok.id, spec({ kind: 'exec', command: ['/bin/busybox', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/health'] }));
  });

  it('exec: a failing command is reported with its exit code and output (health.timeout)', async function () {
    const err = await failure(waitHealthy(health, ok.id, spec({ kind: 'exec', command: ['/bin/busybox', 'sh', '-c', 'echo nope; exit 3'], timeout_secs: 1 })));
    assert.equal(err.code, 'health.timeout');
    assert.match(err.message, /exited 3: nope/);
  });

  it('container_health: passes once the image HEALTHCHECK reports healthy', async function () {
    const { id } = run(IMG_HC);
    await waitHealthy(health, id, spec({ kind: 'container_health' }));
    assert.equal(docker('inspect', '-f', '{{.State.Health.Status}}', id), 'healthy');
  });

  it('container_health: an image without HEALTHCHECK is config.invalid', async function () {
    const err = await failure(waitHealthy(health, ok.id, spec({ kind: 'container_health' })));
    assert.equal(err.code, 'config.invalid');
    assert.ok(err.message.includes('HEALTHCHECK'), err.message);
  });

  it('fails fast with service.start_failed when the container exited and nothing restarts it', async function () {
    const { id } = run(IMG_OK, { command: ['/bin/busybox', 'sh', '-c', 'exit 1'] });
    // seen running even once, it would have "passed" the running check (health.unstable)
    docker('wait', id);
    const err = await failure(waitHealthy(health, id, spec({ kind: 'running', timeout_secs: 60 })));
    assert.equal(err.code, 'service.start_failed');
    assert.match(err.message, /exited with code 1/);
  });

  it('catches a restart under a restart policy even though the probe passes again (health.unstable)', async function () {
    const { id } = run(IMG_OK, { extra: ['--restart', 'always'], command: ['/bin/busybox', 'sh', '-c', '/bin/busybox sleep 1; exit 1'] });
    const err = await failure(waitHealthy(health, id, spec({ kind: 'running', stable_secs: 20, timeout_secs: 60 })));
    assert.equal(err.code, 'health.unstable');
    assert.match(err.message, /restart/);
  });
});
