// The [web] table of agent.toml: the local status page. Off unless enabled; it listens on
// the loopback address unless another address is configured on purpose.
import * as v from 'valibot';

export const WebConfigSchema = v.strictObject({
  enabled: v.optional(v.boolean(), false),
  /** An IP address to listen on; 0.0.0.0 or a service-port address exposes the page. */
  address: v.optional(v.pipe(v.string(), v.ip('web.address must be an IP address')), '127.0.0.1'),
  port: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535)), 8470),
  /** A login lasts this long after its last use. */
  session_idle_secs: v.optional(v.pipe(v.number(), v.integer(), v.minValue(2), v.maxValue(7 * 86400)), 900),
  /** ... and never longer than this after the login. */
  session_max_secs: v.optional(v.pipe(v.number(), v.integer(), v.minValue(2), v.maxValue(30 * 86400)), 8 * 3600),
});

export interface WebConfig {
  enabled: boolean;
  address: string;
  port: number;
  sessionIdleMs: number;
  sessionMaxMs: number;
}

export function toWebConfig(raw: v.InferOutput<typeof WebConfigSchema>): WebConfig {
  return {
    enabled: raw.enabled,
    address: raw.address,
    port: raw.port,
    sessionIdleMs: raw.session_idle_secs * 1000,
    sessionMaxMs: Math.max(raw.session_max_secs, raw.session_idle_secs) * 1000,
  };
}

/** The file holding the operator's password hash, in the config dir. */
export const WEB_PASSWORD_FILE = 'web-password';
