// `caisson device show` and `caisson web passwd` as an operator runs them (the compiled CLI).
// No engine needed.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { caisson, ensureBuilt } from '../support/cli.js';

describe('cli: device show, web passwd', function () {
  this.timeout(60_000);
  let dir: string;
  let config: string;

  before(() => ensureBuilt());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'caisson-webcli-'));
    config = join(dir, 'agent.toml');
    writeFileSync(config, `state_dir = "${join(dir, 'state')}"\ndevice_class = "kiosk-v2"\n`);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('device show makes the identity once and prints the same ID, class and key every time', () => {
    const first = caisson(['device', 'show', '--config', config, '--json']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.json.id, /^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/);
    assert.equal(first.json.device_class, 'kiosk-v2');
    assert.equal(Buffer.from(first.json.public_key, 'base64').length, 32);
    assert.equal(statSync(join(dir, 'device.key')).mode & 0o777, 0o600);
    const again = caisson(['device', 'show', '--config', config, '--json']);
    assert.deepEqual(again.json, first.json);
    const text = caisson(['device', 'show', '--config', config]);
    assert.match(text.stdout, new RegExp(`^id +${first.json.id}$`, 'm'));
    assert.match(text.stdout, /^device class kiosk-v2$/m);
    assert.ok(text.stdout.includes(first.json.public_key));
    assert.ok(!text.stdout.includes('PRIVATE'), 'the private key is never printed');
  });

  it('device show on a broken key: device.identity_invalid, exit 1', () => {
    writeFileSync(join(dir, 'device.key'), 'not a key', { mode: 0o600 });
    const r = caisson(['device', 'show', '--config', config, '--json']);
    assert.equal(r.code, 1);
    assert.equal(r.json.error.code, 'device.identity_invalid');
  });

  it('web passwd stores a scrypt hash 0600 from stdin, never the password; a short one is refused', () => {
    const short = caisson(['web', 'passwd', '--config', config, '--json'], { input: 'short\n' });
    assert.equal(short.code, 1);
    assert.equal(short.json.error.code, 'usage.invalid');
    assert.equal(existsSync(join(dir, 'web-password')), false);
    const ok = caisson(['web', 'passwd', '--config', config], { input: 'correct horse battery\nignored\n' });
    assert.equal(ok.code, 0, ok.stderr);
    const file = join(dir, 'web-password');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const stored = readFileSync(file, 'utf8');
    assert.ok(!stored.includes('correct horse'));
    assert.equal(JSON.parse(stored).algorithm, 'scrypt');
  });
});
