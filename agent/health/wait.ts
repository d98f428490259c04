// Wait until a freshly started container proves healthy: its probe passes and keeps passing,
// with the container running and neither restarted nor re-started, for stable_secs.
//
//   health.timeout       the probe did not pass (long enough) within timeout_secs
//   health.unstable      it had passed, then the container exited/restarted or the probe failed
//   service.start_failed it exited before ever passing and its restart policy will not bring
//                        it back (no point waiting for the timeout)
//   config.invalid       the probe can never pass (container_health without a HEALTHCHECK)
import type { HealthCheckSpec } from '../config/services.js';
import { CaissonError } from '../errors.js';
import { runProbe, type ContainerInfo, type ContainerReader } from './probes.js';

export interface HealthTick {
  /** Seconds left before the check gives up. */
  secondsLeft: number;
  /** Seconds the probe has been passing without interruption (0 when it is not passing). */
  healthyFor: number;
  /** What the last probe saw. */
  detail: string;
}

export interface WaitHealthyOptions {
  onTick?: (state: HealthTick) => void;
  signal?: AbortSignal;
}

type Spec = Pick<HealthCheckSpec, 'kind'> & Partial<HealthCheckSpec>;

export async function waitHealthy(engine: ContainerReader, containerId: string, spec: Spec, opts: WaitHealthyOptions = {}): Promise<void> {
  const full: HealthCheckSpec = {
    timeout_secs: 60,
    poll_interval_secs: 1,
    stable_secs: 5,
    ...spec,
  } as HealthCheckSpec;
  const timeoutMs = full.timeout_secs * 1000;
  const pollMs = Math.max(50, full.poll_interval_secs * 1000);
  const stableMs = Math.max(0, full.stable_secs * 1000);
  const start = Date.now();
  const deadline = start + timeoutMs;

  let passSince: number | undefined;
  let baseline: { restartCount: number; startedAt: string } | undefined;
  let lastDetail = 'no probe ran yet';
  let name = containerId.slice(0, 12);

  for (;;) {
    checkAbort(opts.signal);
    const c = await engine.container(containerId);
    if (!c) {
      const what = `container ${name} disappeared`;
      if (baseline) throw unstable(name, full, what);
      throw new CaissonError('service.start_failed', `${what} during its health check`);
    }
    name = c.Name.replace(/^\//, '') || name;
    const identity = { restartCount: c.RestartCount ?? 0, startedAt: c.State.StartedAt ?? '' };

    if (baseline) {
      if (identity.restartCount !== baseline.restartCount || identity.startedAt !== baseline.startedAt) {
        throw unstable(name, full, `the container restarted (restart count ${baseline.restartCount} → ${identity.restartCount}) after passing; last probe: ${lastDetail}`);
      }
      if (!c.State.Running || c.State.Restarting) {
        throw unstable(name, full, `the container ${stateText(c)} after passing; last probe: ${lastDetail}`);
      }
    } else if (!c.State.Running && !c.State.Restarting && !willRestart(c)) {
      throw new CaissonError('service.start_failed', `${name} ${stateText(c)} before passing its ${full.kind} health check; last probe: ${lastDetail}`);
    }

    const now = Date.now();
    const probeTimeout = Math.min(10_000, Math.max(1000, deadline - now));
    let result;
    if (!c.State.Running || c.State.Restarting) {
      result = { ok: false, detail: `container is ${c.State.Status}` };
    } else {
      result = await runProbe(full, { engine, containerId, container: c, timeoutMs: probeTimeout });
    }
    lastDetail = result.detail;
    const after = Date.now();
    let healthyFor = 0;
    if (result.ok) {
      if (!baseline || passSince === undefined) {
        passSince = after;
        baseline = identity;
      }
      healthyFor = after - passSince;
      if (healthyFor >= stableMs) return;
    } else if (baseline) {
      throw unstable(name, full, `the probe failed after passing: ${result.detail}`);
    }
    const left = deadline - after;
    opts.onTick?.({ secondsLeft: Math.max(0, Math.ceil(left / 1000)), healthyFor: healthyFor / 1000, detail: lastDetail });
    if (left <= 0) {
      const progress = passSince !== undefined ? ` (passing for ${Math.floor(healthyFor / 1000)} s of the ${full.stable_secs} s required)` : '';
      throw new CaissonError(
        'health.timeout',
        `${name} did not become healthy within ${full.timeout_secs} s (${full.kind} check)${progress}; last probe: ${lastDetail}`,
      );
    }
    let wait = Math.min(pollMs, left);
    if (passSince !== undefined) wait = Math.min(wait, Math.max(1, stableMs - healthyFor));
    await sleep(wait, opts.signal);
  }
}

function unstable(name: string, spec: HealthCheckSpec, what: string): CaissonError {
  return new CaissonError('health.unstable', `${name} was not stable for ${spec.stable_secs} s (${spec.kind} check): ${what}`);
}

/** Will the engine start this stopped container again by itself? */
function willRestart(c: ContainerInfo): boolean {
  const policy = c.HostConfig.RestartPolicy;
  const kind = policy?.Name ?? '';
  if (kind === 'always' || kind === 'unless-stopped') return true;
  if (kind === 'on-failure') {
    if (c.State.ExitCode === 0) return false;
    const max = policy?.MaximumRetryCount ?? 0;
    return max === 0 || (c.RestartCount ?? 0) < max;
  }
  return false;
}

function stateText(c: ContainerInfo): string {
  if (c.State.Status === 'exited') return `exited with code ${c.State.ExitCode}${c.State.OOMKilled ? ' (out of memory)' : ''}`;
  return `is ${c.State.Status}`;
}

function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CaissonError('update.interrupted', 'the health check was cancelled', { cause: signal.reason });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CaissonError('update.interrupted', 'the health check was cancelled', { cause: signal.reason }));
    const onAbort = () => {
      clearTimeout(t);
      reject(new CaissonError('update.interrupted', 'the health check was cancelled', { cause: signal!.reason }));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
