import assert from 'node:assert/strict';
import { defaultAgentConfig, parseAgentConfig } from '../../../agent/config/agent.js';
import { CaissonError } from '../../../agent/errors.js';

function rejects(text: string, pattern: RegExp): void {
  assert.throws(
    () => parseAgentConfig(text),
    (err: unknown) => err instanceof CaissonError && err.code === 'config.invalid' && pattern.test(err.message),
  );
}

describe('agent.toml: [web], device_class and the config dir', () => {
  it('the page is off by default and would listen on the loopback address only', () => {
    const c = defaultAgentConfig();
    assert.deepEqual(c.web, { enabled: false, address: '127.0.0.1', port: 8470, sessionIdleMs: 900_000, sessionMaxMs: 8 * 3600_000 });
    assert.equal(c.deviceClass, 'default');
    assert.equal(c.configDir, '/etc/caisson');
  });

  it('takes an address, a port and session times; the config dir is the folder of agent.toml', () => {
    const c = parseAgentConfig('device_class = "kiosk-v2"\n[web]\nenabled = true\naddress = "0.0.0.0"\nport = 8080\nsession_idle_secs = 60\nsession_max_secs = 30\n', '/opt/dev/agent.toml');
    assert.equal(c.web.enabled, true);
    assert.equal(c.web.address, '0.0.0.0');
    assert.equal(c.web.port, 8080);
    assert.equal(c.web.sessionIdleMs, 60_000);
    assert.equal(c.web.sessionMaxMs, 60_000, 'the absolute limit is never shorter than the idle one');
    assert.equal(c.deviceClass, 'kiosk-v2');
    assert.equal(c.configDir, '/opt/dev');
  });

  it('refuses a host name, a bad port, unknown keys and odd device classes', () => {
    rejects('[web]\naddress = "example.com"\n', /web\.address must be an IP address|address/);
    rejects('[web]\nport = 70000\n', /port/);
    rejects('[web]\npassword = "x"\n', /password/);
    rejects('device_class = "../x"\n', /device_class/);
    rejects('device_class = ""\n', /device_class/);
  });
});
