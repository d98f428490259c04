// The runtime layer's surface: the engine port and the per-mode drivers behind it.
export { createDockerEngine, createDriver, type CreateDriverOptions, type Engine, type LoadImageOptions } from './engine.js';
export type { ServiceDriver, SwitchPlan, DockerSwitchPlan, ComposeSwitchPlan, RuntimeState, Checkpoint } from './driver.js';
export type { ComposeCommandSetting } from './compose-command.js';
export { createDockerDriver, PARKED_SUFFIX } from './docker-driver.js';
export { createComposeDriver, overridePathFor } from './compose-driver.js';
export { detectComposeCommand } from './compose-command.js';
