// Pick the driver for a service's runtime_mode.
import type Docker from 'dockerode';
import type { ServiceSpec } from '../config/services.js';
import type { ServiceDriver } from './driver.js';
import { createDockerDriver } from './docker-driver.js';
import { createComposeDriver, type ComposeCommandSetting } from './compose-driver.js';

export interface CreateDriverOptions {
  docker: Docker;
  stateDir: string;
  composeCommand?: ComposeCommandSetting;
}

export function createDriver(service: ServiceSpec, opts: CreateDriverOptions): ServiceDriver {
  if (service.runtime_mode === 'compose') {
    return createComposeDriver(service, {
      docker: opts.docker,
      stateDir: opts.stateDir,
      composeCommand: opts.composeCommand ?? 'auto',
      stopTimeoutSecs: service.compose?.stop_timeout_secs,
    });
  }
  return createDockerDriver(service, { docker: opts.docker, stopTimeoutSecs: service.docker?.stop_timeout_secs });
}

export type { ServiceDriver, SwitchPlan, RuntimeState, Checkpoint } from './driver.js';
export type { ComposeCommandSetting } from './compose-driver.js';
export { createDockerDriver, PARKED_SUFFIX } from './docker-driver.js';
export { createComposeDriver, detectComposeCommand, overridePathFor } from './compose-driver.js';
