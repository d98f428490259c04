// The contract between the pipeline and the two runtime modes (docker, compose).
// A driver never decides anything: the pipeline journals a step, then asks the driver
// to do it. Every method after plan() must be idempotent, because after a crash the
// pipeline calls it again without knowing how far the previous call got.
import type { ServiceSpec } from '../config/services.js';

/** What the service runs now, for `caisson service list/show` and for planning. */
export interface RuntimeState {
  containerId?: string;
  containerName?: string;
  /** The reference the container was created from (Config.Image). */
  imageRef?: string;
  /** The image ID (sha256:…) the container runs. */
  imageId?: string;
  running: boolean;
  /** Docker's status word: running, exited, restarting, … or "missing". */
  status: string;
  restartCount?: number;
}

/**
 * Everything needed to switch and to undo the switch, captured before any side effect
 * and saved in the journal as JSON. Mode-specific details live in `details`.
 */
export interface SwitchPlan {
  mode: 'docker' | 'compose';
  service: string;
  newImageRef: string;
  previous: {
    containerId: string;
    containerName: string;
    imageRef: string;
    imageId: string;
    wasRunning: boolean;
  };
  /** Mode-specific, JSON-serialisable data (e.g. the name the old container is parked under). */
  details: Record<string, unknown>;
}

/** Called by a driver right before each side effect; the pipeline saves it durably. */
export type Checkpoint = (step: string, data?: Record<string, unknown>) => void;

export interface ServiceDriver {
  /** Current runtime state of the service; no side effects. */
  inspect(): Promise<RuntimeState>;
  /** Capture the plan for switching to newImageRef; no side effects. Throws service.not_found. */
  plan(newImageRef: string): Promise<SwitchPlan>;
  /**
   * Replace the running container with one from plan.newImageRef, keeping its whole
   * configuration. Returns the new container's ID. Throws service.start_failed /
   * docker.error / compose.failed when the new container cannot be created or started.
   */
  switchTo(plan: SwitchPlan, checkpoint: Checkpoint): Promise<string>;
  /** The container that now serves the service (after switchTo), for health checks. */
  currentContainerId(plan: SwitchPlan): Promise<string | undefined>;
  /** Put the previous container/config back and running, under its own name. Idempotent. */
  rollback(plan: SwitchPlan, checkpoint: Checkpoint): Promise<string>;
  /** Drop what was kept for rollback (the parked old container). Idempotent. */
  commit(plan: SwitchPlan, checkpoint: Checkpoint): Promise<void>;
}

export type DriverFactory = (service: ServiceSpec) => ServiceDriver;
