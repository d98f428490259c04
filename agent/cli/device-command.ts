// `caisson device show`: the device's ID, class and public key, for support staff to hand
// to the vendor. Makes the identity if the device has none yet (first start).
// `caisson device add-key FILE|-` / `remove-key KEY`: further keys the device decrypts
// packages with, such as a fleet key shared by many devices (device/decryption-keys.ts).
import { Command } from 'commander';
import { loadAgentConfig } from '../config/agent.js';
import { DEFAULT_AGENT_CONFIG_PATH } from '../config/defaults.js';
import { emit, runCommand } from './common.js';
import { ensureDeviceIdentity } from '../device/identity.js';
import { addDecryptionKey, listDecryptionKeys, MAX_KEY_FILE_BYTES, readKeyFileArgument, removeDecryptionKey, stdinText } from '../device/decryption-keys.js';

const CONFIG_HELP = 'agent.toml (its folder holds device.key, device.json and decryption-keys/)';

export function deviceCommand(): Command {
  const device = new Command('device').description("this device's identity and the keys it decrypts packages with");
  device
    .command('show')
    .description('print the device ID, the device class (agent.toml), the X25519 public key and the public halves of added keys')
    .option('--config <file>', CONFIG_HELP, DEFAULT_AGENT_CONFIG_PATH)
    .option('--json', 'print one JSON object instead of text', false)
    .action((opts: { config: string; json: boolean }) =>
      runCommand(opts, async () => {
        const config = loadAgentConfig(opts.config);
        const identity = ensureDeviceIdentity(config.configDir);
        const keys = listDecryptionKeys(config.configDir);
        const view = {
          id: identity.id,
          device_class: config.deviceClass,
          public_key: identity.public_key,
          created_at: identity.created_at,
          decryption_keys: keys,
        };
        const lines = [`id           ${view.id}`, `device class ${view.device_class}`, `public key   ${view.public_key} (X25519)`];
        for (const k of keys) lines.push(`added key    ${k.public_key} (${k.id}, ${k.age_recipient})`);
        emit(opts, view, lines.join('\n'));
        return 0;
      }),
    );
  device
    .command('add-key')
    .argument('<file>', 'an age identity file (AGE-SECRET-KEY-1…), as `caisson key fleet` or age-keygen write it; - reads stdin')
    .description('let this device decrypt packages encrypted to another key too (a fleet key); stored 0600 beside the identity')
    .option('--config <file>', CONFIG_HELP, DEFAULT_AGENT_CONFIG_PATH)
    .option('--json', 'print one JSON object instead of text', false)
    .action((file: string, opts: { config: string; json: boolean }) =>
      runCommand(opts, async () => {
        const config = loadAgentConfig(opts.config);
        ensureDeviceIdentity(config.configDir);
        const text = file === '-' ? stdinText(await readStdin(MAX_KEY_FILE_BYTES + 1)) : readKeyFileArgument(file);
        const r = addDecryptionKey(config.configDir, text);
        emit(opts, r, `${r.added ? 'added' : 'already held'} key ${r.public_key} (${r.id})`);
        return 0;
      }),
    );
  device
    .command('remove-key')
    .argument('<key>', 'the added key: its public key (base64 or age1…) or its ID, as `caisson device show` lists it')
    .description('stop decrypting with an added key (the device\'s own key stays)')
    .option('--config <file>', CONFIG_HELP, DEFAULT_AGENT_CONFIG_PATH)
    .option('--json', 'print one JSON object instead of text', false)
    .action((key: string, opts: { config: string; json: boolean }) =>
      runCommand(opts, async () => {
        const config = loadAgentConfig(opts.config);
        const r = removeDecryptionKey(config.configDir, key);
        emit(opts, { ...r, removed: true }, `removed key ${r.public_key} (${r.id})`);
        return 0;
      }),
    );
  return device;
}

/** Up to `max` bytes of stdin; stops reading there (the caller refuses a bigger input). */
async function readStdin(max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    parts.push(chunk);
    n += chunk.length;
    if (n >= max) break;
  }
  process.stdin.destroy();
  return Buffer.concat(parts).subarray(0, max);
}
