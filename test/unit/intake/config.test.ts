import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultAgentConfig, loadAgentConfig, parseAgentConfig } from '../../../agent/config/agent.js';
import { CaissonError } from '../../../agent/errors.js';
import { loadCatalog } from '../../../agent/config/services.js';
import { removeTree, tempDir } from '../../support/intake-helpers.js';

function rejects(text: string, pattern: RegExp): void {
  assert.throws(
    () => parseAgentConfig(text),
    (err: unknown) => err instanceof CaissonError && err.code === 'config.invalid' && pattern.test(err.message),
  );
}

describe('agent.toml', () => {
  it('has defaults that work without a file', () => {
    const c = defaultAgentConfig();
    assert.equal(c.mediaRoot, '/media/caisson');
    assert.equal(c.inbox, '/var/lib/caisson/inbox');
    assert.equal(c.stateDir, '/var/lib/caisson');
    assert.equal(c.servicesPath, '/etc/caisson/services.toml');
    assert.equal(c.trustedKeysDir, '/etc/caisson/trusted-keys');
    assert.equal(c.composeCommand, 'auto');
    assert.deepEqual(c.ledPaths, []);
    assert.equal(c.resultFileName, 'caisson-result.txt');
    assert.equal(c.reportsDirName, 'caisson-reports');
    assert.equal(c.maintenanceWindow, undefined);
    assert.equal(c.historyRetentionDays, 365);
    assert.equal(c.incompleteTimeoutMs, 600_000);
  });

  it('reads every section', () => {
    const c = parseAgentConfig(`
media_root = "/mnt/sticks"
inbox = "/srv/inbox"
state_dir = "/srv/caisson"
services = "/srv/services.toml"
trusted_keys_dir = "/srv/keys"
docker_socket = "/run/docker.sock"
compose_command = "docker-compose"
[led]
paths = ["/sys/class/leds/status", "/sys/class/leds/aux"]
[report]
result_file = "RESULT.TXT"
reports_dir = "reports"
[intake]
stable_checks = 5
check_interval_secs = 2
incomplete_timeout_secs = 90
[schedules]
maintenance_window = "0 2 * * *"
maintenance_window_minutes = 90
housekeeping = "30 4 * * 0"
history_retention_days = 30
`);
    assert.equal(c.mediaRoot, '/mnt/sticks');
    assert.equal(c.composeCommand, 'docker-compose');
    assert.deepEqual(c.ledPaths, ['/sys/class/leds/status', '/sys/class/leds/aux']);
    assert.equal(c.resultFileName, 'RESULT.TXT');
    assert.equal(c.checkIntervalMs, 2000);
    assert.equal(c.incompleteTimeoutMs, 90_000);
    assert.deepEqual(c.maintenanceWindow, { cron: '0 2 * * *', minutes: 90 });
    assert.equal(c.housekeepingCron, '30 4 * * 0');
    assert.equal(c.historyRetentionDays, 30);
  });

  it('rejects unknown keys, relative paths, bad cron and unsafe report names', () => {
    rejects('medaroot = "/x"', /medaroot/);
    rejects('inbox = "inbox"', /absolute/);
    rejects('[schedules]\nmaintenance_window = "every night"', /cron/);
    rejects('[schedules]\nhousekeeping = "61 * * * *"', /cron/);
    rejects('[report]\nresult_file = "../etc/passwd"', /plain file name/);
    rejects('[report]\nreports_dir = ".hidden"', /plain file name/);
    rejects('[led]\npaths = ["/a", "/a"]', /twice/);
    rejects('compose_command = "podman"', /compose_command/);
    rejects('state_dir = ', /agent\.toml/);
    rejects('[intake]\nincomplete_timeout_secs = 0', /incomplete_timeout_secs/);
  });

  it('loads a file; a missing explicit file is an error', () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'agent.toml');
      writeFileSync(file, 'inbox = "/srv/in"\n');
      assert.equal(loadAgentConfig(file).inbox, '/srv/in');
      assert.equal(loadAgentConfig(file).source, file);
      assert.throws(() => loadAgentConfig(join(dir, 'missing.toml')), /cannot read the agent configuration/);
    } finally {
      removeTree(dir);
    }
  });

  it('the example config/agent.toml and config/services.toml parse, and agent.toml holds the defaults', () => {
    const example = loadAgentConfig(join(process.cwd(), 'config', 'agent.toml'));
    const { source: _a, configDir: _c, ...exampleValues } = example;
    const { source: _b, configDir: _d, ...defaults } = defaultAgentConfig();
    assert.deepEqual(exampleValues, defaults);
    assert.equal(loadCatalog(join(process.cwd(), 'config', 'services.toml')).services.length, 2);
  });
});
