// Start the status page for a running agent: wires the agent's pipeline, its progress
// events and the device identity into the web server (server.ts).
import { join } from 'node:path';
import type { EventEmitter } from 'node:events';
import type { AgentConfig } from '../config/agent.js';
import type { Catalog, ServiceSpec } from '../config/services.js';
import type { DeviceIdentity } from '../device/identity.js';
import type { ProgressBus } from '../log/events.js';
import { loadTrustedKeys } from '../package/signature.js';
import type { ServiceDriver } from '../runtime/driver.js';
import type { Journal } from '../store/journal.js';
import type { ContainerInfo } from '../health/probes.js';
import { WEB_PASSWORD_FILE } from '../config/web.js';
import { WebServer } from './server.js';
import { StatusSource } from './status.js';

export interface StartWebOptions {
  config: AgentConfig;
  pipeline: { catalog: Catalog; journal: Journal; driverFor(s: ServiceSpec): ServiceDriver; container(id: string): Promise<ContainerInfo | undefined> };
  agent: EventEmitter & { deferredCount: number };
  bus: ProgressBus;
  identity: DeviceIdentity;
  log: { info(m: string, meta?: Record<string, unknown>): void; warn(m: string, meta?: Record<string, unknown>): void };
}

export function passwordFileFor(configDir: string): string {
  return join(configDir, WEB_PASSWORD_FILE);
}

export async function startWeb(opts: StartWebOptions): Promise<WebServer> {
  const c = opts.config;
  const status = new StatusSource({
    journal: opts.pipeline.journal,
    catalog: opts.pipeline.catalog,
    container: (id) => opts.pipeline.container(id),
    driverFor: (s) => opts.pipeline.driverFor(s),
  });
  const server = new WebServer({
    web: c.web,
    status,
    identity: opts.identity,
    deviceClass: c.deviceClass,
    // the same rule the pipeline applies: any trusted key makes signatures mandatory
    signaturesRequired: loadTrustedKeys(c.trustedKeysDir).length > 0,
    inbox: c.inbox,
    stateDir: c.stateDir,
    passwordFile: passwordFileFor(c.configDir),
    settings: {
      config_file: c.source,
      media_root: c.mediaRoot,
      inbox: c.inbox,
      state_dir: c.stateDir,
      services: c.servicesPath,
      device_class: c.deviceClass,
      maintenance_window: c.maintenanceWindow ?? null,
      history_retention_days: c.historyRetentionDays,
      web: { address: c.web.address, port: c.web.port },
    },
    bus: opts.bus,
    agent: opts.agent,
    log: opts.log,
  });
  const bound = await server.listen();
  opts.log.info('status page listening', { url: `http://${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}/` });
  return server;
}
