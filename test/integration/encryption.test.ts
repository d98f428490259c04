// Encrypted packages end to end, through the CLI against the real engine and a running
// service: built encrypted (and signed) for two devices, loaded by a device holding one of
// the keys; refused, service untouched and nothing imported, on a device holding neither,
// when tampered, and (plain) on a device that requires encryption. Nothing decrypted is
// left on disk after the update. A package encrypted to a fleet key only (`caisson key
// fleet`) loads on a device that was given the key (`caisson device add-key`) and is refused
// by one that was not.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tarEnd, tarEntry } from '../../agent/package/tar-writer.js';
import {
  buildTestImage,
  commonArgs,
  containerInfo,
  dockerServiceFixture,
  ensureBuilt,
  filesUnder,
  healthyVersion,
  imageExists,
  removeContainers,
  removeImages,
  runCli,
  runServiceContainer,
  stagingLeft,
  type CliFixture,
} from './pipeline-support.js';

const REPO = 'caisson-enc/web';
const CONTAINER = 'caisson-enc-web';
const PORT = 18372;

/** A device: its agent.toml (whose folder holds device.key) and its public key. */
interface Device {
  config: string;
  publicKey: string;
  id: string;
}

async function makeDevice(dir: string, agentToml = ''): Promise<Device> {
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'agent.toml');
  writeFileSync(config, agentToml);
  const r = await runCli(['device', 'show', '--json', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  return { config, publicKey: r.json.public_key, id: r.json.id };
}

/** Rewrite the package with one byte of its encrypted entry flipped, the tar still whole. */
function flipInEntry(pkg: string, out: string): string {
  const buf = readFileSync(pkg);
  const parts: Buffer[] = [];
  let o = 0;
  while (o + 512 <= buf.length && !buf.subarray(o, o + 512).every((b) => b === 0)) {
    const h = buf.subarray(o, o + 512);
    const name = h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
    const size = parseInt(h.toString('latin1', 124, 136).replace(/[\0 ]/g, '') || '0', 8);
    const data = Buffer.from(buf.subarray(o + 512, o + 512 + size));
    if (name === 'image.tar.age') data[data.length >> 1]! ^= 0x01;
    parts.push(tarEntry({ name }, data));
    o += 512 + Math.ceil(size / 512) * 512;
  }
  writeFileSync(out, Buffer.concat([...parts, tarEnd()]));
  return out;
}

describe('encrypted packages (CLI, real engine)', function () {
  this.timeout(600_000);
  let work: string;
  let f: CliFixture;
  let containerBefore: string;
  const dev: Record<string, Device> = {};
  const pk: Record<string, string> = {};
  let fleet: { id: string; public_key: string; age_recipient: string };

  before(async function () {
    this.timeout(300_000);
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'caisson-enc-'));
    const keysDir = join(work, 'trusted-keys');
    const vendorDir = join(work, 'vendor');
    mkdirSync(keysDir);
    mkdirSync(vendorDir);
    const g = await runCli(['key', 'generate', '-o', join(vendorDir, 'vendor')]);
    assert.equal(g.code, 0, g.stderr);
    writeFileSync(join(keysDir, 'vendor.pub'), readFileSync(join(vendorDir, 'vendor.pub')));
    dev.a = await makeDevice(join(work, 'device-a'));
    dev.b = await makeDevice(join(work, 'device-b'));
    dev.stranger = await makeDevice(join(work, 'device-c'));
    dev.strict = await makeDevice(join(work, 'device-strict'), 'require_encryption = true\n');
    // the vendor's fleet key, given to one device only
    const fleetKey = await runCli(['key', 'fleet', '--json', '-o', join(vendorDir, 'fleet.key')]);
    assert.equal(fleetKey.code, 0, fleetKey.stderr);
    fleet = fleetKey.json;
    dev.fleet = await makeDevice(join(work, 'device-fleet'), 'require_encryption = true\n');
    const added = await runCli(['device', 'add-key', '--json', '--config', dev.fleet.config, join(vendorDir, 'fleet.key')]);
    assert.equal(added.code, 0, added.stderr);
    assert.equal(added.json.added, true);
    f = dockerServiceFixture(work, { name: 'enc', revision: 'enc-v1', container: CONTAINER, image: `${REPO}:1.0.0`, port: PORT }, keysDir);
    for (const v of ['1.0.0', '1.1.0', '1.2.0']) buildTestImage({ ref: `${REPO}:${v}`, version: v });
    const build = async (name: string, extra: string[], version = '1.1.0') => {
      const out = join(work, 'pkg', `${name}.edgepkg`);
      mkdirSync(join(work, 'pkg'), { recursive: true });
      const r = await runCli(['package', 'build', '--image', `${REPO}:${version}`, '--service', 'enc', '--service-revision', 'enc-v1', '--platform', 'linux/amd64',
        '--version', version, '-o', out, '--sign', join(vendorDir, 'vendor.key'), ...extra]);
      assert.equal(r.code, 0, r.stderr);
      return out;
    };
    pk.sealed = await build('sealed', ['--encrypt-to', dev.a.publicKey, dev.b.publicKey]);
    pk.plain = await build('plain', []);
    pk.tampered = flipInEntry(pk.sealed, join(work, 'pkg', 'tampered.edgepkg'));
    // encrypted to the fleet key alone, named as age spells it
    pk.fleet = await build('fleet', ['--encrypt-to', fleet.age_recipient], '1.2.0');
    removeImages(`${REPO}:1.1.0`, `${REPO}:1.2.0`);
    removeContainers(CONTAINER);
    containerBefore = runServiceContainer({ name: CONTAINER, image: `${REPO}:1.0.0`, port: PORT });
    assert.equal(await healthyVersion(PORT), '1.0.0');
  });

  after(() => {
    removeContainers(CONTAINER, `${CONTAINER}.caisson-prev`);
    removeImages(`${REPO}:1.0.0`, `${REPO}:1.1.0`, `${REPO}:1.2.0`);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const run = (verb: 'load' | 'validate', pkg: string, device: Device) =>
    runCli(['package', verb, ...(verb === 'load' ? ['--yes'] : []), '--json', ...commonArgs(f), '--config', device.config, pkg]);

  it('builds a package whose signed manifest pins the encrypted entry and names both devices', () => {
    const text = readFileSync(pk.sealed!).toString('latin1');
    for (const part of ['image.tar.age', 'scheme = "age-v1-x25519"', dev.a!.id, dev.b!.id, 'age-encryption.org/v1']) assert.ok(text.includes(part), part);
  });

  const refusals: Array<[string, string, () => string, () => Device]> = [
    ['on a device holding neither key', 'crypto.no_matching_key', () => pk.sealed!, () => dev.stranger!],
    ['with a byte of its encrypted image flipped', 'crypto.chunk_tampered', () => pk.tampered!, () => dev.a!],
    ['unencrypted, on a device that requires encryption', 'policy.encryption_required', () => pk.plain!, () => dev.strict!],
    ['encrypted to the fleet key, on a device that was not given it', 'crypto.no_matching_key', () => pk.fleet!, () => dev.a!],
  ];
  for (const [what, code, pkg, device] of refusals) {
    it(`refuses a package ${what} (${code}, exit 2): service untouched, nothing imported, nothing staged`, async () => {
      const r = await run('load', pkg(), device());
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.json.outcome, 'rejected');
      assert.equal(r.json.error.code, code);
      assert.equal(containerInfo(CONTAINER)?.id, containerBefore);
      assert.equal(await healthyVersion(PORT), '1.0.0');
      assert.equal(imageExists(`${REPO}:1.1.0`), false);
      assert.equal(imageExists(`${REPO}:1.2.0`), false);
      assert.deepEqual(stagingLeft(f.stateDir), []);
    });
  }

  it('validates on the second recipient without importing anything', async () => {
    const r = await run('validate', pk.sealed!, dev.b!);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.outcome, 'valid');
    assert.equal(imageExists(`${REPO}:1.1.0`), false);
    assert.deepEqual(stagingLeft(f.stateDir), []);
  });

  it('loads on a device holding one of the keys, and leaves nothing decrypted on disk', async () => {
    const r = await run('load', pk.sealed!, dev.a!);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.outcome, 'committed');
    assert.equal(await healthyVersion(PORT), '1.1.0');
    assert.deepEqual(stagingLeft(f.stateDir), []);
    assert.deepEqual(filesUnder(f.stateDir).filter((p) => /image\.tar/.test(p)), []);
  });

  it('loads a package encrypted to the fleet key only on a device given that key (device add-key), its own key not a recipient', async () => {
    const shown = await runCli(['device', 'show', '--json', '--config', dev.fleet!.config]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.deepEqual(shown.json.decryption_keys, [{ id: fleet.id, public_key: fleet.public_key, age_recipient: fleet.age_recipient }]);
    assert.ok(!shown.stdout.includes('AGE-SECRET-KEY'));
    const text = readFileSync(pk.fleet!).toString('latin1');
    assert.ok(text.includes(fleet.id) && !text.includes(dev.fleet!.id));
    const r = await run('load', pk.fleet!, dev.fleet!);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.outcome, 'committed');
    assert.equal(await healthyVersion(PORT), '1.2.0');
    assert.deepEqual(stagingLeft(f.stateDir), []);
    assert.deepEqual(filesUnder(f.stateDir).filter((p) => /image\.tar/.test(p)), []);
  });

  it('refuses the fleet package again once the key was removed (device remove-key)', async () => {
    const removed = await runCli(['device', 'remove-key', '--json', '--config', dev.fleet!.config, fleet.age_recipient]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.json.id, fleet.id);
    const r = await run('validate', pk.fleet!, dev.fleet!);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.json.error.code, 'crypto.no_matching_key');
  });
});
