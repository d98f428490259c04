// agent.toml: where the agent looks (media root, inbox, state dir), what it tells people
// (LED, report file names) and when it works (maintenance window, housekeeping).
// Parsed strictly (unknown keys are errors); every key has a default, and a missing
// file means "all defaults", so the agent runs on a fresh device without configuration.
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import * as v from 'valibot';
import { validate as validateCron } from 'node-cron';
import { CaissonError, describe } from '../errors.js';
import { DEVICE_CLASS_PATTERN, firstIssue } from './patterns.js';
import { DEFAULT_AGENT_CONFIG_PATH, DEFAULT_INBOX, DEFAULT_SERVICES_PATH, DEFAULT_STATE_DIR, DEFAULT_TRUSTED_KEYS_DIR } from './defaults.js';
import { WebConfigSchema, toWebConfig, type WebConfig } from './web.js';

export { DEFAULT_AGENT_CONFIG_PATH } from './defaults.js';

const absolutePath = (what: string) =>
  v.pipe(v.string(), v.regex(/^\/[^\0]*$/, `${what} must be an absolute path`), v.maxLength(4096));
// A plain file or folder name on the stick: no slashes, no dot-only names, no hidden files.
const plainName = (what: string) =>
  v.pipe(
    v.string(),
    v.regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, `${what} must be a plain file name ([A-Za-z0-9_][A-Za-z0-9_.-]*)`),
  );
const cronExpression = (what: string) =>
  v.pipe(
    v.string(),
    v.check((s) => validateCron(s), `${what} is not a valid cron expression (5 or 6 fields, node-cron syntax)`),
  );

const AgentConfigSchema = v.strictObject({
  media_root: v.optional(absolutePath('media_root'), '/media/caisson'),
  inbox: v.optional(absolutePath('inbox'), DEFAULT_INBOX),
  state_dir: v.optional(absolutePath('state_dir'), DEFAULT_STATE_DIR),
  services: v.optional(absolutePath('services'), DEFAULT_SERVICES_PATH),
  trusted_keys_dir: v.optional(absolutePath('trusted_keys_dir'), DEFAULT_TRUSTED_KEYS_DIR),
  docker_socket: v.optional(absolutePath('docker_socket')),
  compose_command: v.optional(v.picklist(['auto', 'docker compose', 'docker-compose']), 'auto'),
  /** Refuse packages whose image is not encrypted (policy.encryption_required). */
  require_encryption: v.optional(v.boolean(), false),
  /** What kind of device this is (shown with the device ID; a package's target.device_class must match it). */
  device_class: v.optional(v.pipe(v.string(), v.regex(DEVICE_CLASS_PATTERN, 'device_class must be [A-Za-z0-9][A-Za-z0-9_.-]*, at most 64 characters')), 'default'),
  web: v.optional(WebConfigSchema, {}),
  led: v.optional(
    v.strictObject({
      /** sysfs LED class folders, e.g. /sys/class/leds/caisson:status; empty = no LED. */
      paths: v.optional(v.array(absolutePath('led.paths entry')), []),
    }),
    {},
  ),
  report: v.optional(
    v.strictObject({
      result_file: v.optional(plainName('report.result_file'), 'caisson-result.txt'),
      reports_dir: v.optional(plainName('report.reports_dir'), 'caisson-reports'),
    }),
    {},
  ),
  intake: v.optional(
    v.strictObject({
      /** An inbox file must keep its size over this many checks (and be a whole tar). */
      stable_checks: v.optional(v.pipe(v.number(), v.integer(), v.minValue(2), v.maxValue(60)), 3),
      check_interval_secs: v.optional(v.pipe(v.number(), v.minValue(0.05), v.maxValue(60)), 1),
      /** A stable inbox file still not a whole tar after this long goes to failed/ (package.truncated). */
      incomplete_timeout_secs: v.optional(v.pipe(v.number(), v.minValue(1), v.maxValue(7 * 24 * 3600)), 600),
      /** Packages taken from one stick; the rest get one FAILED line in its report. */
      max_packages_per_stick: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1000)), 20),
      /** A stick that takes longer to list its packages or write its reports counts as hung. */
      stick_timeout_secs: v.optional(v.pipe(v.number(), v.minValue(1), v.maxValue(3600)), 60),
    }),
    {},
  ),
  schedules: v.optional(
    v.strictObject({
      /** When inbox packages may be applied; absent = at once. USB packages never wait. */
      maintenance_window: v.optional(cronExpression('schedules.maintenance_window')),
      maintenance_window_minutes: v.optional(v.pipe(v.number(), v.minValue(1), v.maxValue(24 * 60)), 60),
      housekeeping: v.optional(cronExpression('schedules.housekeeping'), '17 3 * * *'),
      history_retention_days: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(36500)), 365),
    }),
    {},
  ),
});

type RawAgentConfig = v.InferOutput<typeof AgentConfigSchema>;

export interface AgentConfig {
  mediaRoot: string;
  inbox: string;
  stateDir: string;
  servicesPath: string;
  trustedKeysDir: string;
  /** Undefined: CAISSON_DOCKER_SOCKET, DOCKER_HOST, then /var/run/docker.sock (docker-client.ts). */
  dockerSocket: string | undefined;
  composeCommand: 'auto' | 'docker compose' | 'docker-compose';
  ledPaths: string[];
  resultFileName: string;
  reportsDirName: string;
  stableChecks: number;
  checkIntervalMs: number;
  incompleteTimeoutMs: number;
  maxPackagesPerStick: number;
  stickTimeoutMs: number;
  maintenanceWindow?: { cron: string; minutes: number };
  housekeepingCron: string;
  historyRetentionDays: number;
  deviceClass: string;
  requireEncryption: boolean;
  /** Where device.key, device.json and web-password live: the folder of agent.toml. */
  configDir: string;
  web: WebConfig;
  /** Where the configuration came from ("defaults" when no file). */
  source: string;
}

export function parseAgentConfig(text: string, source = 'agent.toml'): AgentConfig {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    throw new CaissonError('config.invalid', `${source}: ${describe(err)}`);
  }
  const result = v.safeParse(AgentConfigSchema, raw);
  if (!result.success) throw new CaissonError('config.invalid', `${source}: ${firstIssue(result.issues)}`);
  return toConfig(result.output, source);
}

export function defaultAgentConfig(): AgentConfig {
  return parseAgentConfig('', 'defaults');
}

/**
 * Read agent.toml. A missing file at the default path means "all defaults"; any other
 * path must exist (a typo in --config must not silently run with defaults).
 */
export function loadAgentConfig(path?: string): AgentConfig {
  const file = path ?? DEFAULT_AGENT_CONFIG_PATH;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (file === DEFAULT_AGENT_CONFIG_PATH && (err as NodeJS.ErrnoException).code === 'ENOENT') return defaultAgentConfig();
    throw new CaissonError('config.invalid', `cannot read the agent configuration ${file}: ${describe(err)}`, {
      next: 'Create agent.toml (see config/agent.toml and docs/agent.md) or pass --config FILE.',
    });
  }
  return parseAgentConfig(text, file);
}

function toConfig(raw: RawAgentConfig, source: string): AgentConfig {
  const s = raw.schedules;
  const paths = raw.led.paths;
  if (new Set(paths).size !== paths.length) throw new CaissonError('config.invalid', `${source}: led.paths lists a path twice`);
  if (raw.report.result_file === raw.report.reports_dir) {
    throw new CaissonError('config.invalid', `${source}: report.result_file and report.reports_dir must differ`);
  }
  return {
    mediaRoot: raw.media_root,
    inbox: raw.inbox,
    stateDir: raw.state_dir,
    servicesPath: raw.services,
    trustedKeysDir: raw.trusted_keys_dir,
    dockerSocket: raw.docker_socket,
    composeCommand: raw.compose_command,
    ledPaths: paths,
    resultFileName: raw.report.result_file,
    reportsDirName: raw.report.reports_dir,
    stableChecks: raw.intake.stable_checks,
    checkIntervalMs: Math.round(raw.intake.check_interval_secs * 1000),
    incompleteTimeoutMs: Math.round(raw.intake.incomplete_timeout_secs * 1000),
    maxPackagesPerStick: raw.intake.max_packages_per_stick,
    stickTimeoutMs: Math.round(raw.intake.stick_timeout_secs * 1000),
    maintenanceWindow: s.maintenance_window ? { cron: s.maintenance_window, minutes: s.maintenance_window_minutes } : undefined,
    housekeepingCron: s.housekeeping,
    historyRetentionDays: s.history_retention_days,
    deviceClass: raw.device_class,
    requireEncryption: raw.require_encryption,
    configDir: source === 'defaults' ? dirname(DEFAULT_AGENT_CONFIG_PATH) : dirname(source),
    web: toWebConfig(raw.web),
    source,
  };
}
