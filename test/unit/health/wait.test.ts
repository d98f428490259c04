// waitHealthy's rules on a scripted engine (no Docker): what passes, what fails fast, what
// waits for the timeout, what counts as unstable, and the ticks it reports. The real
// containers behind each probe kind are test/integration/health/wait.test.ts.
import assert from 'node:assert/strict';
import { waitHealthy, type HealthTick } from '../../../agent/health/wait.js';
import type { ContainerInfo, ContainerReader } from '../../../agent/health/probes.js';
import type { HealthCheckSpec } from '../../../agent/config/services.js';
import { CaissonError } from '../../../agent/errors.js';

interface Seen {
  running?: boolean;
  status?: string;
  exitCode?: number;
  restartCount?: number;
  startedAt?: string;
  restartPolicy?: string;
  healthcheck?: string[];
  health?: string;
}

/**
 * An engine whose container goes through `script` one inspect at a time (the last entry
 * repeats); undefined is a container that does not exist. Exec answers with `exec`.
 */
function scripted(script: Array<Seen | undefined>, exec = { exitCode: 0 as number | undefined, output: '' }): ContainerReader & { inspects: number } {
  const engine = {
    inspects: 0,
    async container(): Promise<ContainerInfo | undefined> {
      const seen = script[Math.min(engine.inspects++, script.length - 1)];
      if (!seen) return undefined;
      const running = seen.running ?? true;
      return {
        Name: '/svc',
        RestartCount: seen.restartCount ?? 0,
        Config: { Image: 'svc:1', Healthcheck: seen.healthcheck ? { Test: seen.healthcheck } : undefined },
        HostConfig: { RestartPolicy: { Name: seen.restartPolicy ?? 'no', MaximumRetryCount: 0 } },
        State: {
          Running: running,
          Restarting: false,
          Status: seen.status ?? (running ? 'running' : 'exited'),
          ExitCode: seen.exitCode ?? 0,
          OOMKilled: false,
          StartedAt: seen.startedAt ?? 't0',
          ...(seen.health ? { Health: { Status: seen.health, Log: [] } } : {}),
        },
      } as unknown as ContainerInfo;
    },
    async exec() {
      return exec;
    },
  };
  return engine;
}

/** Short windows: the rules are what is tested here, not the durations. */
function spec(s: Partial<HealthCheckSpec> & Pick<HealthCheckSpec, 'kind'>): HealthCheckSpec {
  return { timeout_secs: 1, poll_interval_secs: 0.05, stable_secs: 0.2, ...s } as HealthCheckSpec;
}

async function failure(p: Promise<unknown>): Promise<CaissonError> {
  const err = await p.then(
    () => new Error('expected a failure'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CaissonError, `a CaissonError, got ${String(err)}`);
  return err;
}

const EXEC_FAILS = { exitCode: 3, output: 'nope\n' };
const failingExec = (o: Partial<HealthCheckSpec> = {}) => spec({ kind: 'exec', command: ['check'], ...o });

describe('health/waitHealthy (scripted engine)', function () {
  it('passes once the probe has passed for stable_secs, and reports ticks within the timeout', async function () {
    const ticks: HealthTick[] = [];
    // a window ten polls long: a loaded machine may delay one poll, never the whole window
    await waitHealthy(scripted([{}]), 'c1', spec({ kind: 'running', timeout_secs: 5, stable_secs: 0.5 }), { onTick: (t) => ticks.push(t) });
    assert.ok(ticks.length > 0);
    assert.ok(ticks.every((t) => t.secondsLeft <= 5 && t.secondsLeft >= 0));
    assert.ok(ticks.some((t) => t.healthyFor > 0), 'a tick counts the passing time');
  });

  it('fails fast with service.start_failed when the container exited before passing and nothing restarts it', async function () {
    const started = Date.now();
    const err = await failure(waitHealthy(scripted([{ running: false, exitCode: 1 }]), 'c1', spec({ kind: 'running', timeout_secs: 60 })));
    assert.equal(err.code, 'service.start_failed');
    assert.match(err.message, /exited with code 1/);
    assert.ok(Date.now() - started < 5000, 'not the 60 s timeout');
  });

  it('waits for the timeout when a restart policy will start the exited container again', async function () {
    for (const restartPolicy of ['always', 'unless-stopped', 'on-failure']) {
      const err = await failure(waitHealthy(scripted([{ running: false, exitCode: 1, restartPolicy }]), 'c1', spec({ kind: 'running', timeout_secs: 0.1 })));
      assert.equal(err.code, 'health.timeout', restartPolicy);
    }
  });

  it('fails with service.start_failed when the container is gone before passing, health.unstable after', async function () {
    assert.equal((await failure(waitHealthy(scripted([undefined]), 'c1', spec({ kind: 'running' })))).code, 'service.start_failed');
    const err = await failure(waitHealthy(scripted([{}, undefined]), 'c1', spec({ kind: 'running', stable_secs: 5, timeout_secs: 10 })));
    assert.equal(err.code, 'health.unstable');
    assert.match(err.message, /disappeared/);
  });

  it('times out with health.timeout and says what the last probe saw', async function () {
    const err = await failure(waitHealthy(scripted([{}], EXEC_FAILS), 'c1', failingExec({ timeout_secs: 0.3 })));
    assert.equal(err.code, 'health.timeout');
    assert.match(err.message, /within 0\.3 s \(exec check\)/);
    assert.match(err.message, /exited 3: nope/);
  });

  it('says how long it had passed when the timeout ends a stable window', async function () {
    const err = await failure(waitHealthy(scripted([{}]), 'c1', spec({ kind: 'running', stable_secs: 5, timeout_secs: 0.3 })));
    assert.equal(err.code, 'health.timeout');
    assert.match(err.message, /passing for 0 s of the 5 s required/);
  });

  it('catches a probe that fails after passing (health.unstable, before the timeout)', async function () {
    const engine = scripted([{}, {}], EXEC_FAILS);
    let calls = 0;
    const exec = engine.exec;
    engine.exec = async () => (calls++ < 2 ? { exitCode: 0, output: '' } : exec('c1', ['check']));
    const ticks: HealthTick[] = [];
    const err = await failure(waitHealthy(engine, 'c1', failingExec({ stable_secs: 20, timeout_secs: 60 }), { onTick: (t) => ticks.push(t) }));
    assert.equal(err.code, 'health.unstable');
    assert.match(err.message, /the probe failed after passing/);
    assert.ok(ticks.some((t) => t.healthyFor > 0));
  });

  it('catches a restart after passing even though the probe passes again (restart count or start time)', async function () {
    const restarted = await failure(waitHealthy(scripted([{}, {}, { restartCount: 1, startedAt: 't1' }]), 'c1', spec({ kind: 'running', stable_secs: 20, timeout_secs: 60 })));
    assert.equal(restarted.code, 'health.unstable');
    assert.match(restarted.message, /restart count 0 → 1/);
    const restartedByHand = await failure(waitHealthy(scripted([{}, { startedAt: 't1' }]), 'c1', spec({ kind: 'running', stable_secs: 20, timeout_secs: 60 })));
    assert.equal(restartedByHand.code, 'health.unstable');
  });

  it('catches a container that exited after passing (health.unstable)', async function () {
    const err = await failure(waitHealthy(scripted([{}, { running: false, exitCode: 1 }]), 'c1', spec({ kind: 'running', stable_secs: 20, timeout_secs: 60 })));
    assert.equal(err.code, 'health.unstable');
    assert.match(err.message, /exited with code 1 after passing/);
  });

  it('refuses container_health on an image without HEALTHCHECK with config.invalid', async function () {
    const err = await failure(waitHealthy(scripted([{}]), 'c1', spec({ kind: 'container_health', timeout_secs: 60 })));
    assert.equal(err.code, 'config.invalid');
    assert.match(err.message, /HEALTHCHECK/);
    await waitHealthy(scripted([{ healthcheck: ['CMD', 'true'], health: 'starting' }, { healthcheck: ['CMD', 'true'], health: 'healthy' }]), 'c1', spec({ kind: 'container_health' }));
  });

  it('stops with update.interrupted when aborted', async function () {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const err = await failure(waitHealthy(scripted([{}], EXEC_FAILS), 'c1', failingExec({ timeout_secs: 60 }), { signal: ac.signal }));
    assert.equal(err.code, 'update.interrupted');
  });
});
