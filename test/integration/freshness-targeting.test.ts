// Freshness and targeting through the CLI against a real engine and a running service: an
// expired package and packages for another device are rejected (exit 2) with the service,
// its container and the engine's images untouched; a package for this device is applied.
import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildTestImage,
  commonArgs,
  containerInfo,
  dockerServiceFixture,
  ensureBuilt,
  healthyVersion,
  imageExists,
  removeContainers,
  removeImages,
  runCli,
  runServiceContainer,
  sleep,
  stagingLeft,
  type CliFixture,
} from './pipeline-support.js';

const REPO = 'caisson-sec-fresh/web';
const CONTAINER = 'caisson-sec-fresh-web';
const PORT = 18387;

describe('freshness and targeting (CLI, real engine)', function () {
  this.timeout(600_000);
  let work: string;
  let f: CliFixture;
  let agentToml: string;
  let containerBefore: string;
  let device: { id: string; device_class: string };
  const pk: Record<string, string> = {};

  before(async function () {
    this.timeout(300_000);
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'caisson-sec-fresh-'));
    const keysDir = join(work, 'trusted-keys');
    mkdirSync(keysDir);
    const g = await runCli(['key', 'generate', '-o', join(work, 'vendor')]);
    expect(g.code, g.stderr).to.equal(0);
    writeFileSync(join(keysDir, 'vendor.pub'), readFileSync(join(work, 'vendor.pub')));
    f = dockerServiceFixture(work, { name: 'fresh', revision: 'fresh-v1', container: CONTAINER, image: `${REPO}:1.0.0`, port: PORT }, keysDir);
    // this device: class kiosk-v2, its identity made in the folder of its agent.toml
    mkdirSync(join(work, 'etc'));
    agentToml = join(work, 'etc', 'agent.toml');
    writeFileSync(agentToml, 'device_class = "kiosk-v2"\n');
    const show = await runCli(['device', 'show', '--json', '--config', agentToml]);
    expect(show.code, show.stderr).to.equal(0);
    device = show.json;
    expect(device.device_class).to.equal('kiosk-v2');

    for (const v of ['1.0.0', '1.1.0']) buildTestImage({ ref: `${REPO}:${v}`, version: v });
    const build = async (name: string, extra: string[]) => {
      const out = join(work, 'pkg', `${name}.edgepkg`);
      mkdirSync(join(work, 'pkg'), { recursive: true });
      const r = await runCli(['package', 'build', '--image', `${REPO}:1.1.0`, '--service', 'fresh', '--service-revision', 'fresh-v1',
        '--platform', 'linux/amd64', '--version', '1.1.0', '-o', out, '--sign', join(work, 'vendor.key'), ...extra]);
      expect(r.code, r.stderr + r.stdout).to.equal(0);
      pk[name] = out;
    };
    await build('expired', ['--expires-in', '1s']);
    await build('otherClass', ['--device-class', 'gateway']);
    await build('otherDevice', ['--device-id', 'aaaa-bbbb-cccc-dddd', '--device-id', 'eeee-ffff-gggg-hhhh']);
    await build('forMe', ['--device-class', 'kiosk-v2', '--device-id', device.id, '--expires-in', '30d']);
    removeImages(`${REPO}:1.1.0`);
    removeContainers(CONTAINER);
    containerBefore = runServiceContainer({ name: CONTAINER, image: `${REPO}:1.0.0`, port: PORT });
    expect(await healthyVersion(PORT)).to.equal('1.0.0');
    await sleep(1100); // `expired` expires one second after it was built
  });

  after(() => {
    removeContainers(CONTAINER, `${CONTAINER}.caisson-prev`);
    removeImages(`${REPO}:1.0.0`, `${REPO}:1.1.0`);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const load = (pkg: string) => runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), '--config', agentToml, pkg]);

  async function expectUntouched(): Promise<void> {
    expect(containerInfo(CONTAINER)?.id, 'the same container').to.equal(containerBefore);
    expect(await healthyVersion(PORT)).to.equal('1.0.0');
    expect(imageExists(`${REPO}:1.1.0`), 'nothing imported').to.equal(false);
    expect(stagingLeft(f.stateDir)).to.deep.equal([]);
  }

  it('rejects an expired package with policy.expired (exit 2), naming both times; service untouched', async () => {
    const r = await load(pk.expired!);
    expect(r.code, r.stderr).to.equal(2);
    expect(r.json.outcome).to.equal('rejected');
    expect(r.json.error.code).to.equal('policy.expired');
    expect(r.json.error.message).to.match(/expired at \d{4}-\d\d-\d\dT.*clock says \d{4}-/);
    await expectUntouched();
  });

  for (const [what, name] of [['another device class', 'otherClass'], ['other device IDs', 'otherDevice']] as const) {
    it(`rejects a package for ${what} with manifest.not_for_this_device (exit 2), naming this device; service untouched`, async () => {
      const r = await load(pk[name]!);
      expect(r.code, r.stderr).to.equal(2);
      expect(r.json.error.code).to.equal('manifest.not_for_this_device');
      expect(r.json.error.message).to.include(device.id).and.include('"kiosk-v2"');
      await expectUntouched();
    });
  }

  it('the text result says the same in one line (exit 2)', async () => {
    const r = await runCli(['package', 'validate', ...commonArgs(f), '--config', agentToml, pk.otherClass!]);
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stdout).to.match(/^rejected: .*\(manifest\.not_for_this_device\): the package is for device class "gateway", not for this device \(ID [a-z2-7-]+, class "kiosk-v2"\)/);
  });

  it('applies a package for this device (its class and ID, not expired); another device of the class would not take it', async () => {
    const elsewhere = join(work, 'elsewhere', 'agent.toml');
    mkdirSync(join(work, 'elsewhere'));
    writeFileSync(elsewhere, 'device_class = "kiosk-v2"\n');
    const stranger = await runCli(['package', 'validate', '--json', ...commonArgs(f), '--config', elsewhere, pk.forMe!]);
    expect(stranger.code, stranger.stderr).to.equal(2);
    expect(stranger.json.error.code).to.equal('manifest.not_for_this_device');
    expect(stranger.json.error.message).to.include('ID unknown');
    expect(existsSync(join(work, 'elsewhere', 'device.key')), 'the CLI reads an identity, never makes one').to.equal(false);

    const r = await load(pk.forMe!);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.json.outcome).to.equal('committed');
    expect(await healthyVersion(PORT)).to.equal('1.1.0');
  });
});
