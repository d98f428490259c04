// Engine steps both update paths share (one service, pipeline.ts; a stack, stack.ts): run an
// idempotent step through an engine that may go away, and put a service's previous version
// back until it is verified healthy again.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceSpec } from '../config/services.js';
import { toCaissonError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { waitHealthy } from '../health/wait.js';
import type { Checkpoint, SwitchPlan } from '../runtime/driver.js';
import type { Engine } from '../runtime/engine.js';

/** How long the pipeline waits for an engine that went away, and how often it retries a restore. */
export interface PipelineTiming {
  /** How long to wait for an engine that stopped answering mid-update, per attempt. */
  engineWaitMs: number;
  engineAttempts: number;
  /** How often a rollback restores the previous container when it does not stay healthy. */
  restoreAttempts: number;
  /** Pauses between restore attempts: long enough for a stopping engine to finish stopping. */
  restorePausesMs: number[];
}

export const DEFAULT_TIMING: PipelineTiming = {
  engineWaitMs: 60_000,
  engineAttempts: 3,
  restoreAttempts: 5,
  restorePausesMs: [1_000, 3_000, 6_000, 10_000],
};

export interface EngineSteps {
  engine: Engine;
  log: Logger;
  timing: PipelineTiming;
}

/**
 * Run an idempotent engine step; when the engine does not answer, wait for it (bounded by
 * engineWaitMs per attempt) and run the step again. Still unreachable after that:
 * docker.unreachable, and the record stays open for `caisson recover`.
 */
export async function withEngine<T>(deps: EngineSteps, doing: string, step: () => Promise<T>): Promise<T> {
  const { engineAttempts, engineWaitMs } = deps.timing;
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      const error = toCaissonError(err, 'docker.error');
      if (error.code !== 'docker.unreachable' || attempt >= engineAttempts) throw err;
      deps.log.warn(`  the Docker engine went away while ${doing}; waiting up to ${engineWaitMs / 1000} s for it`);
      await deps.engine.ping({ waitMs: engineWaitMs });
    }
  }
}

/**
 * Put the previous container back (idempotent driver step) and watch it for the service's
 * whole stable window. An engine that is shutting down still answers while it stops every
 * container and closes its stores: a restore can fail outright ("failed to update store …
 * endpoint") or be killed right after it passed. Either redoes the restore after a growing
 * pause (bounded), and once the engine stops answering, the caller's withEngine waits for
 * it and redoes the whole step.
 */
export async function restorePrevious(deps: EngineSteps, service: ServiceSpec, plan: SwitchPlan, checkpoint: Checkpoint): Promise<string> {
  const { engine, log } = deps;
  const { restoreAttempts, restorePausesMs, engineWaitMs } = deps.timing;
  const driver = engine.driverFor(service);
  for (let attempt = 1; ; attempt++) {
    try {
      const containerId = await driver.rollback(plan, checkpoint);
      await waitHealthy(engine, containerId, service.health_check);
      return containerId;
    } catch (err) {
      const error = toCaissonError(err, 'rollback.failed');
      if (error.code === 'docker.unreachable' || attempt >= restoreAttempts) throw err;
      if (await driver.previousGone(plan)) throw err;
      const pause = restorePausesMs[attempt - 1] ?? restorePausesMs.at(-1) ?? 0;
      log.warn(`  restoring the previous ${service.name} failed (${error.code}: ${error.message}); trying again in ${pause / 1000} s`);
      await sleep(pause);
      await engine.ping({ waitMs: engineWaitMs });
    }
  }
}
