// waitHealthy and every probe kind against real containers.
import assert from 'node:assert/strict';
import { connectDocker } from '../../../agent/runtime/docker-client.js';
import { waitHealthy, type HealthTick } from '../../../agent/health/wait.js';
import { CaissonError } from '../../../agent/errors.js';
import type { HealthCheckSpec } from '../../../agent/config/services.js';
import { OWN_LABEL, buildOwnImage, cleanup, docker } from '../runtime/support.js';
import { tmpdir } from 'node:os';
import { createDockerEngine } from '../../../agent/runtime/engine.js';

const P = 'caisson-rt-h-';
const IMG_OK = `${P}ok:1`;
const IMG_HC = `${P}hc:1`;
const IMG_BAD_HC = `${P}badhc:1`;
const IMG_NOHEALTH = `${P}nohealth:1`;
const IMG_EXIT = `${P}exit:1`;
const IMG_CRASH = `${P}crash:1`;
const IMAGES = [IMG_OK, IMG_HC, IMG_BAD_HC, IMG_NOHEALTH, IMG_EXIT, IMG_CRASH];
const api = connectDocker();
/** What health checks read, through the engine port. */
const health = createDockerEngine(api, { stateDir: tmpdir() });

let nextPort = 18150;

/** Start a container of `image` with its port 8080 published on a fresh host port. */
function run(image: string, extra: string[] = []): { id: string; port: number } {
  const port = nextPort++;
  const name = `${P}${port}`;
  const id = docker('run', '-d', '--pull', 'never', '--name', name, ...OWN_LABEL, '--stop-timeout', '1', '-p', `127.0.0.1:${port}:8080`, ...extra, image);
  return { id, port };
}

function spec(s: Partial<HealthCheckSpec> & Pick<HealthCheckSpec, 'kind'>): HealthCheckSpec {
  return { timeout_secs: 15, poll_interval_secs: 0.2, stable_secs: 1, ...s } as HealthCheckSpec;
}

async function failure(p: Promise<unknown>): Promise<CaissonError> {
  const err = await p.then(
    () => new Error('expected a failure'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CaissonError);
  return err as CaissonError;
}

describe('health/waitHealthy (real containers)', function () {
  this.timeout(120_000);

  before(function () {
    cleanup({ containerPrefix: P, images: IMAGES });
    buildOwnImage({ ref: IMG_OK, version: '1' });
    buildOwnImage({ ref: IMG_HC, version: '1', healthcheck: true });
    buildOwnImage({ ref: IMG_BAD_HC, version: '1', behaviour: 'unhealthy-healthcheck' });
    buildOwnImage({ ref: IMG_NOHEALTH, version: '1', behaviour: 'no-health' });
    buildOwnImage({ ref: IMG_EXIT, version: '1', behaviour: 'exit' });
    buildOwnImage({ ref: IMG_CRASH, version: '1', behaviour: 'crashloop', crashAfterSecs: 2 });
  });

  after(function () {
    cleanup({ containerPrefix: P, images: IMAGES });
  });

  describe('running', function () {
    it('passes for a running container and reports ticks', async function () {
      const { id } = run(IMG_OK);
      const ticks: HealthTick[] = [];
      await waitHealthy(health, id, spec({ kind: 'running', stable_secs: 1 }), { onTick: (t) => ticks.push(t) });
      assert.ok(ticks.length > 0);
      assert.equal(ticks.every((t) => t.secondsLeft <= 15 && t.secondsLeft >= 0), true);
    });

    it('fails fast with service.start_failed when the container exits and nothing restarts it', async function () {
      const { id } = run(IMG_EXIT);
      // seen running even once, it would have "passed" the running check (health.unstable)
      docker('wait', id);
      const err = await failure(waitHealthy(health, id, spec({ kind: 'running', timeout_secs: 60 })));
      assert.equal(err.code, 'service.start_failed');
      assert.match(err.message, /exited with code 1/);
    });
  });

  describe('container_health', function () {
    it('passes once the image HEALTHCHECK reports healthy', async function () {
      const { id } = run(IMG_HC);
      await waitHealthy(health, id, spec({ kind: 'container_health' }));
      assert.equal(docker('inspect', '-f', '{{.State.Health.Status}}', id), 'healthy');
    });

    it('times out with health.timeout when the HEALTHCHECK keeps failing', async function () {
      const { id } = run(IMG_BAD_HC);
      const err = await failure(waitHealthy(health, id, spec({ kind: 'container_health', timeout_secs: 4 })));
      assert.equal(err.code, 'health.timeout');
      assert.match(err.message, /HEALTHCHECK (starting|unhealthy)/);
    });

    it('rejects an image without HEALTHCHECK with config.invalid', async function () {
      const { id } = run(IMG_OK);
      const err = await failure(waitHealthy(health, id, spec({ kind: 'container_health' })));
      assert.equal(err.code, 'config.invalid');
      assert.ok(err.message.includes('HEALTHCHECK'));
    });
  });

  describe('http', function () {
    it('passes on 2xx', async function () {
      const { id, port } = run(IMG_OK);
      await waitHealthy(health, id, spec({ kind: 'http', url: `http://127.0.0.1:${port}/health` }));
    });

    it('times out on 404 and says what it saw', async function () {
      const { id, port } = run(IMG_NOHEALTH);
      const err = await failure(waitHealthy(health, id, spec({ kind: 'http', url: `http://127.0.0.1:${port}/health`, timeout_secs: 3 })));
      assert.equal(err.code, 'health.timeout');
      assert.ok(err.message.includes('answered 404'));
    });

    it('accepts the status named by expect_status', async function () {
      const { id, port } = run(IMG_NOHEALTH);
      await waitHealthy(health, id, spec({ kind: 'http', url: `http://127.0.0.1:${port}/health`, expect_status: 404 }));
    });
  });

  describe('tcp', function () {
    it('passes when the port accepts connections', async function () {
      const { id, port } = run(IMG_OK);
      await waitHealthy(health, id, spec({ kind: 'tcp', host: '127.0.0.1', port }));
    });

    it('times out when nothing listens', async function () {
      const { id } = run(IMG_OK);
      const err = await failure(waitHealthy(health, id, spec({ kind: 'tcp', port: 18199, timeout_secs: 3 })));
      assert.equal(err.code, 'health.timeout');
      assert.ok(err.message.includes('127.0.0.1:18199'));
    });
  });

  describe('exec', function () {
    it('passes when the command exits 0 inside the container', async function () {
      const { id } = run(IMG_OK);
      await waitHealthy(health, id, spec({ kind: 'exec', command: ['/bin/busybox', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/health'] }));
    });

    it('times out when the command keeps failing, with its exit code', async function () {
      const { id } = run(IMG_OK);
      const err = await failure(waitHealthy(health, id, spec({ kind: 'exec', command: ['/bin/busybox', 'sh', '-c', 'echo nope; exit 3'], timeout_secs: 3 })));
      assert.equal(err.code, 'health.timeout');
      assert.ok(err.message.includes('exited 3'));
      assert.ok(err.message.includes('nope'));
    });
  });

  describe('stable_secs', function () {
    it('catches a crashloop that passed first (health.unstable, before the timeout)', async function () {
      const { id, port } = run(IMG_CRASH);
      const ticks: HealthTick[] = [];
      const err = await failure(
        waitHealthy(health, id, spec({ kind: 'http', url: `http://127.0.0.1:${port}/health`, stable_secs: 20, timeout_secs: 60 }), {
          onTick: (t) => ticks.push(t),
        }),
      );
      assert.equal(err.code, 'health.unstable');
      assert.equal(ticks.some((t) => t.healthyFor > 0), true);
    });

    it('catches a restart under a restart policy even though the probe passes again (running kind)', async function () {
      const { id } = run(IMG_CRASH, ['--restart', 'always']);
      const err = await failure(waitHealthy(health, id, spec({ kind: 'running', stable_secs: 20, timeout_secs: 60 })));
      assert.equal(err.code, 'health.unstable');
    });
  });

  it('stops with update.interrupted when aborted', async function () {
    const { id, port } = run(IMG_NOHEALTH);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 500);
    const err = await failure(waitHealthy(health, id, spec({ kind: 'http', url: `http://127.0.0.1:${port}/health`, timeout_secs: 60 }), { signal: ac.signal }));
    assert.equal(err.code, 'update.interrupted');
  });
});
