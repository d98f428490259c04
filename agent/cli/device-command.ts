// `caisson device show`: the device's ID, class and public key, for support staff to hand
// to the vendor. Makes the identity if the device has none yet (first start).
import { Command } from 'commander';
import { loadAgentConfig } from '../config/agent.js';
import { emit, runCommand } from './common.js';
import { ensureDeviceIdentity } from '../device/identity.js';

export function deviceCommand(): Command {
  const device = new Command('device').description("this device's identity");
  device
    .command('show')
    .description('print the device ID, the device class (agent.toml) and the X25519 public key')
    .option('--config <file>', 'agent.toml (its folder holds device.key and device.json)', '/etc/caisson/agent.toml')
    .option('--json', 'print one JSON object instead of text', false)
    .action((opts: { config: string; json: boolean }) =>
      runCommand(opts, async () => {
        const config = loadAgentConfig(opts.config);
        const identity = ensureDeviceIdentity(config.configDir);
        const view = { id: identity.id, device_class: config.deviceClass, public_key: identity.public_key, created_at: identity.created_at };
        emit(opts, view, [`id           ${view.id}`, `device class ${view.device_class}`, `public key   ${view.public_key} (X25519)`].join('\n'));
        return 0;
      }),
    );
  return device;
}
