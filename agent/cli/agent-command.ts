// The `caisson agent` command: opens the pipeline, runs the agent (intake/agent.ts) and,
// when enabled, the status page (web/) on the same pipeline, until a signal.
import type { Command } from 'commander';
import type { AgentLog } from '../intake/log.js';
import { Agent } from '../intake/agent.js';
import { toCaissonError } from '../errors.js';
import { ensureDeviceIdentity, type DeviceIdentity } from '../device/identity.js';
import { ProgressBus, emittingProgress } from '../log/events.js';
import { startWeb } from '../web/index.js';
import { DEFAULT_AGENT_CONFIG_PATH } from '../config/defaults.js';
import { runCommand } from './common.js';

export function addAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the autonomous agent: USB sticks and the inbox in, LED and stick reports out')
    .option('--config <file>', 'agent.toml', DEFAULT_AGENT_CONFIG_PATH)
    .action(async (opts: { config: string }) => {
      await runCommand({}, async () => {
        await runAgent({ configPath: opts.config });
        return 0;
      });
    });
}

export interface RunAgentOptions {
  configPath?: string;
  /** Resolve this to stop (tests); SIGTERM and SIGINT always stop. */
  stopSignal?: Promise<unknown>;
  log?: AgentLog;
}

/**
 * Run the agent until SIGTERM or SIGINT: open the pipeline (it takes the state-dir lock;
 * while Docker does not answer yet, retry every 10 s), recover open updates, watch sticks
 * and the inbox. On the signal: stop taking work, let the running update finish, close
 * watchers and schedules, release the lock, then resolve. A second signal exits at once
 * (the pipeline's journal lets the next start finish or reverse the update).
 */
export async function runAgent(opts: RunAgentOptions = {}): Promise<void> {
  const { loadAgentConfig } = await import('../config/agent.js');
  const { openPipeline } = await import('../pipeline/index.js');
  const { createLogger } = await import('../log/logger.js');
  const config = loadAgentConfig(opts.configPath);
  const logger = createLogger({ stateDir: config.stateDir });
  const log = opts.log ?? winstonLog(logger);
  // progress as events, for the status page; the device identity, made at first start
  const bus = new ProgressBus();
  const identity = deviceIdentityOrWarn(config.configDir, log);

  let signalled = 0;
  let wake: () => void = () => {};
  const stopped = new Promise<void>((resolve) => {
    wake = resolve;
  });
  const onSignal = (sig: NodeJS.Signals) => {
    signalled++;
    if (signalled > 1) {
      log.warn('second signal: exiting now; the next start finishes or reverses the running update', { signal: sig });
      process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
    }
    log.info('stopping', { signal: sig });
    wake();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  void opts.stopSignal?.then(() => wake());
  try {
    let pipeline: Awaited<ReturnType<typeof openPipeline>> | undefined;
    while (!pipeline && signalled === 0) {
      try {
        pipeline = await openPipeline({
          servicesPath: config.servicesPath,
          stateDir: config.stateDir,
          dockerSocket: config.dockerSocket,
          trustedKeysDir: config.trustedKeysDir,
          configDir: config.configDir,
          requireEncryption: config.requireEncryption,
          composeCommand: config.composeCommand,
          log: logger,
          progress: emittingProgress(bus),
          lockPurpose: 'caisson agent',
          device: () => ({ id: identity.id, deviceClass: config.deviceClass }),
        });
      } catch (err) {
        const e = toCaissonError(err);
        if (e.code !== 'docker.unreachable') throw e;
        log.warn('Docker does not answer yet; retrying in 10 s', { error: e.message });
        await Promise.race([stopped, new Promise((r) => setTimeout(r, 10_000))]);
      }
    }
    if (!pipeline) return;
    const agent = new Agent(config, pipeline, { log, device: identity.public_key ? identity : undefined });
    let web: { close(): Promise<void> } | undefined;
    try {
      await agent.start();
      if (config.web.enabled) web = await startWeb({ config, pipeline, agent, bus, identity, log });
      await stopped;
    } finally {
      await web?.close();
      await agent.stop();
      pipeline.close();
      log.info('state lock released');
    }
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

function deviceIdentityOrWarn(configDir: string, log: AgentLog): DeviceIdentity {
  try {
    return ensureDeviceIdentity(configDir);
  } catch (err) {
    // a read-only or broken config dir must not stop updates; the page says "unknown"
    log.warn('no device identity', { error: String(err) });
    return { id: 'unknown', public_key: '', created_at: '' };
  }
}

function winstonLog(logger: { info(m: string): unknown; warn(m: string): unknown; error(m: string): unknown }): AgentLog {
  const fmt = (m: string, meta?: Record<string, unknown>) => {
    if (!meta) return `agent: ${m}`;
    const kv = Object.entries(meta)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : String(v)}`)
      .join(' ');
    return kv ? `agent: ${m} (${kv})` : `agent: ${m}`;
  };
  return {
    info: (m, meta) => void logger.info(fmt(m, meta)),
    warn: (m, meta) => void logger.warn(fmt(m, meta)),
    error: (m, meta) => void logger.error(fmt(m, meta)),
  };
}
