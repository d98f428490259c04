// Where an installed Caisson keeps things when no option says otherwise. A file of its own,
// importing nothing, so that the CLI can set its options' defaults without loading the
// pipeline that uses them.
export const DEFAULT_STATE_DIR = '/var/lib/caisson';
export const DEFAULT_SERVICES_PATH = '/etc/caisson/services.toml';
export const DEFAULT_TRUSTED_KEYS_DIR = '/etc/caisson/trusted-keys';
export const DEFAULT_AGENT_CONFIG_PATH = '/etc/caisson/agent.toml';
export const DEFAULT_INBOX = '/var/lib/caisson/inbox';
/** The folder of agent.toml: device.key lives there (device/identity.ts). */
export const DEFAULT_CONFIG_DIR = '/etc/caisson';
