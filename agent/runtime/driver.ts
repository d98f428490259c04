// The contract between the pipeline and the two runtime modes (docker, compose).
// A driver never decides anything: the pipeline journals a step, then asks the driver
// to do it. Every method after plan() must be idempotent, because after a crash the
// pipeline calls it again without knowing how far the previous call got.
import type Docker from 'dockerode';
import type { ServiceSpec } from '../config/services.js';
import type { EndpointConfig } from './container-spec.js';

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

/** What the plan knows of the version that ran before the switch. */
export interface PreviousVersion {
  containerId: string;
  containerName: string;
  imageRef: string;
  imageId: string;
  /**
   * Whether it ran when the plan was made (a fact for the log). A rollback leaves the
   * previous version running either way: a predefined service is never left stopped.
   */
  wasRunning: boolean;
}

interface PlanBase {
  service: string;
  newImageRef: string;
  previous: PreviousVersion;
}

/** runtime_mode "docker": the old container is parked under another name, a new one created. */
export interface DockerSwitchPlan extends PlanBase {
  mode: 'docker';
  parkedName: string;
  /** Create options for the new container (Image = newImageRef), captured at plan time. */
  create: Docker.ContainerCreateOptions;
  connect: Array<{ network: string; endpoint: EndpointConfig }>;
  stopTimeoutSecs: number;
}

/** runtime_mode "compose": an override file names the new image; compose recreates the service. */
export interface ComposeSwitchPlan extends PlanBase {
  mode: 'compose';
  project: string;
  composeFile: string;
  composeService: string;
  overridePath: string;
  /** Content of the override file before the switch, or null when there was none. */
  previousOverride: string | null;
}

/**
 * Everything needed to switch and to undo the switch, captured before any side effect
 * and saved in the journal as JSON. One shape per runtime mode; only the driver of that
 * mode reads the mode's fields.
 */
export type SwitchPlan = DockerSwitchPlan | ComposeSwitchPlan;

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
  /** Put the previous container/config back and running (whether it ran before or not), under its own name. Idempotent. */
  rollback(plan: SwitchPlan, checkpoint: Checkpoint): Promise<string>;
  /** Drop what was kept for rollback (the parked old container). Idempotent. */
  commit(plan: SwitchPlan, checkpoint: Checkpoint): Promise<void>;
  /**
   * Is what a rollback needs (the parked container, the previous image) gone for good?
   * An engine error is no proof of that: it answers false then.
   */
  previousGone(plan: SwitchPlan): Promise<boolean>;
  /** The plan as the journal keeps it: values the journal must not hold (container environment) redacted. */
  forJournal(plan: SwitchPlan): SwitchPlan;
}

export type DriverFactory = (service: ServiceSpec) => ServiceDriver;
