// Encrypted packages end to end, through the CLI against the real engine and a running
// service: built encrypted (and signed) for two devices, loaded by a device holding one of
// the keys; refused, service untouched and nothing imported, on a device holding neither,
// when tampered, and (plain) on a device that requires encryption. Nothing decrypted is
// left on disk after the update.
import { expect } from 'chai';
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
  expect(r.code, r.stderr).to.equal(0);
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

  before(async function () {
    this.timeout(300_000);
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'caisson-enc-'));
    const keysDir = join(work, 'trusted-keys');
    const vendorDir = join(work, 'vendor');
    mkdirSync(keysDir);
    mkdirSync(vendorDir);
    const g = await runCli(['key', 'generate', '-o', join(vendorDir, 'vendor')]);
    expect(g.code, g.stderr).to.equal(0);
    writeFileSync(join(keysDir, 'vendor.pub'), readFileSync(join(vendorDir, 'vendor.pub')));
    dev.a = await makeDevice(join(work, 'device-a'));
    dev.b = await makeDevice(join(work, 'device-b'));
    dev.stranger = await makeDevice(join(work, 'device-c'));
    dev.strict = await makeDevice(join(work, 'device-strict'), 'require_encryption = true\n');
    f = dockerServiceFixture(work, { name: 'enc', revision: 'enc-v1', container: CONTAINER, image: `${REPO}:1.0.0`, port: PORT }, keysDir);
    for (const v of ['1.0.0', '1.1.0']) buildTestImage({ ref: `${REPO}:${v}`, version: v });
    const build = async (name: string, extra: string[]) => {
      const out = join(work, 'pkg', `${name}.edgepkg`);
      mkdirSync(join(work, 'pkg'), { recursive: true });
      const r = await runCli(['package', 'build', '--image', `${REPO}:1.1.0`, '--service', 'enc', '--service-revision', 'enc-v1', '--platform', 'linux/amd64',
        '--version', '1.1.0', '-o', out, '--sign', join(vendorDir, 'vendor.key'), ...extra]);
      expect(r.code, r.stderr).to.equal(0);
      return out;
    };
    pk.sealed = await build('sealed', ['--encrypt-to', dev.a.publicKey, dev.b.publicKey]);
    pk.plain = await build('plain', []);
    pk.tampered = flipInEntry(pk.sealed, join(work, 'pkg', 'tampered.edgepkg'));
    removeImages(`${REPO}:1.1.0`);
    removeContainers(CONTAINER);
    containerBefore = runServiceContainer({ name: CONTAINER, image: `${REPO}:1.0.0`, port: PORT });
    expect(await healthyVersion(PORT)).to.equal('1.0.0');
  });

  after(() => {
    removeContainers(CONTAINER, `${CONTAINER}.caisson-prev`);
    removeImages(`${REPO}:1.0.0`, `${REPO}:1.1.0`);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const run = (verb: 'load' | 'validate', pkg: string, device: Device) =>
    runCli(['package', verb, ...(verb === 'load' ? ['--yes'] : []), '--json', ...commonArgs(f), '--config', device.config, pkg]);

  it('builds a package whose signed manifest pins the encrypted entry and names both devices', () => {
    const text = readFileSync(pk.sealed!).toString('latin1');
    expect(text).to.include('image.tar.age');
    expect(text).to.include('scheme = "age-v1-x25519"');
    expect(text).to.include(dev.a!.id).and.to.include(dev.b!.id);
    expect(text).to.include('age-encryption.org/v1');
  });

  const refusals: Array<[string, string, () => string, () => Device]> = [
    ['on a device holding neither key', 'crypto.no_matching_key', () => pk.sealed!, () => dev.stranger!],
    ['with a byte of its encrypted image flipped', 'crypto.chunk_tampered', () => pk.tampered!, () => dev.a!],
    ['unencrypted, on a device that requires encryption', 'policy.encryption_required', () => pk.plain!, () => dev.strict!],
  ];
  for (const [what, code, pkg, device] of refusals) {
    it(`refuses a package ${what} (${code}, exit 2): service untouched, nothing imported, nothing staged`, async () => {
      const r = await run('load', pkg(), device());
      expect(r.code, r.stderr).to.equal(2);
      expect(r.json.outcome).to.equal('rejected');
      expect(r.json.error.code).to.equal(code);
      expect(containerInfo(CONTAINER)?.id).to.equal(containerBefore);
      expect(await healthyVersion(PORT)).to.equal('1.0.0');
      expect(imageExists(`${REPO}:1.1.0`)).to.equal(false);
      expect(stagingLeft(f.stateDir)).to.deep.equal([]);
    });
  }

  it('validates on the second recipient without importing anything', async () => {
    const r = await run('validate', pk.sealed!, dev.b!);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.json.outcome).to.equal('valid');
    expect(imageExists(`${REPO}:1.1.0`)).to.equal(false);
    expect(stagingLeft(f.stateDir)).to.deep.equal([]);
  });

  it('loads on a device holding one of the keys, and leaves nothing decrypted on disk', async () => {
    const r = await run('load', pk.sealed!, dev.a!);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.json.outcome).to.equal('committed');
    expect(await healthyVersion(PORT)).to.equal('1.1.0');
    expect(stagingLeft(f.stateDir)).to.deep.equal([]);
    expect(filesUnder(f.stateDir).filter((p) => /image\.tar/.test(p))).to.deep.equal([]);
  });
});
