// The Debian package's pieces name each other by path: the units and rules name the helper
// and the command where scripts/package-deb.sh installs them, and the agent's sandbox
// (ReadWritePaths, its start condition, the tmpfiles folders) must match agent.toml's
// defaults, or the packaged agent cannot write its own state. test/device proves the whole;
// this catches a drift without a device.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { ROOT } from '../support/udev.js';

const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

function unitValues(text: string, key: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1).trim());
}

describe('packaging: units, rules and the package script agree on paths', () => {
  const script = read('scripts/package-deb.sh');
  const agentUnit = read('config/caisson-agent.service');
  const mediaUnit = read('config/caisson-media@.service');
  const agentToml = parse(read('config/agent.toml')) as Record<string, unknown>;

  it('the helper is named where the package installs it', () => {
    assert.match(script, /install -m 0755 udev\/caisson-media "\$app\/caisson-media"/);
    assert.match(script, /^app=\$stage\/usr\/lib\/caisson$/m);
    for (const file of ['udev/99-caisson.rules', 'udev/99-caisson-loop-test.rules']) {
      const runs = read(file)
        .split('\n')
        .filter((l) => l.startsWith('RUN+='));
      assert.ok(runs.length >= 2, file);
      for (const r of runs) assert.match(r, /^RUN\+="\/usr\/lib\/caisson\/caisson-media (add|remove) %k"$/, file);
    }
    assert.deepEqual(unitValues(mediaUnit, 'ExecStart'), ['/usr/lib/caisson/caisson-media add %I']);
    assert.deepEqual(unitValues(mediaUnit, 'ExecStop'), ['/usr/lib/caisson/caisson-media remove %I']);
  });

  it("the agent's unit runs the packaged command with the packaged config", () => {
    assert.match(script, /"\$stage\/usr\/bin\/caisson"/);
    assert.deepEqual(unitValues(agentUnit, 'ExecStart'), ['/usr/bin/caisson agent --config /etc/caisson/agent.toml']);
    assert.match(script, /install -m 0644 config\/agent\.toml "\$stage\/etc\/caisson\/agent\.toml"/);
  });

  it("the agent's sandbox lets it write where agent.toml's defaults point, and waits for the catalog there", () => {
    const writable = unitValues(agentUnit, 'ReadWritePaths').flatMap((v) => v.split(/\s+/));
    const under = (p: string) => writable.some((w) => p === w || p.startsWith(`${w}/`));
    for (const key of ['state_dir', 'inbox', 'media_root']) {
      const p = agentToml[key];
      assert.equal(typeof p, 'string', key);
      assert.ok(under(p as string), `${key} = ${String(p)} is outside ReadWritePaths (${writable.join(' ')})`);
    }
    assert.deepEqual(unitValues(agentUnit, 'ConditionPathExists'), [agentToml.services]);
    assert.deepEqual(unitValues(agentUnit, 'ProtectSystem'), ['strict']);
  });

  it('tmpfiles makes every writable folder, with the state folder private', () => {
    const lines = read('config/caisson.tmpfiles')
      .split('\n')
      .filter((l) => l.startsWith('d '))
      .map((l) => l.split(/\s+/));
    const made = new Map(lines.map((f) => [f[1]!, f[2]!]));
    for (const key of ['state_dir', 'inbox', 'media_root']) assert.ok(made.has(agentToml[key] as string), key);
    assert.equal(made.get(agentToml.state_dir as string), '0750');
  });
});
