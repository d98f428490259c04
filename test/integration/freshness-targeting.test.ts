// Freshness and targeting through the CLI against a real engine and a running service: an
// expired package and packages for another device are rejected (exit 2) with the service,
// its container and the engine's images untouched; a package for this device is applied.
import assert from 'node:assert/strict';
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
    assert.equal(g.code, 0, g.stderr);
    writeFileSync(join(keysDir, 'vendor.pub'), readFileSync(join(work, 'vendor.pub')));
    f = dockerServiceFixture(work, { name: 'fresh', revision: 'fresh-v1', container: CONTAINER, image: `${REPO}:1.0.0`, port: PORT }, keysDir);
    // this device: class kiosk-v2, its identity made in the folder of its agent.toml
    mkdirSync(join(work, 'etc'));
    agentToml = join(work, 'etc', 'agent.toml');
    writeFileSync(agentToml, 'device_class = "kiosk-v2"\n');
    const show = await runCli(['device', 'show', '--json', '--config', agentToml]);
    assert.equal(show.code, 0, show.stderr);
    device = show.json;
    assert.equal(device.device_class, 'kiosk-v2');

    for (const v of ['1.0.0', '1.1.0']) buildTestImage({ ref: `${REPO}:${v}`, version: v });
    const build = async (name: string, extra: string[]) => {
      const out = join(work, 'pkg', `${name}.edgepkg`);
      mkdirSync(join(work, 'pkg'), { recursive: true });
      const r = await runCli(['package', 'build', '--image', `${REPO}:1.1.0`, '--service', 'fresh', '--service-revision', 'fresh-v1',
        '--platform', 'linux/amd64', '--version', '1.1.0', '-o', out, '--sign', join(work, 'vendor.key'), ...extra]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      pk[name] = out;
    };
    await Promise.all([
      build('expired', ['--expires-in', '1s']),
      build('otherClass', ['--device-class', 'gateway']),
      build('forMe', ['--device-class', 'kiosk-v2', '--device-id', device.id, '--expires-in', '30d']),
    ]);
    removeImages(`${REPO}:1.1.0`);
    removeContainers(CONTAINER);
    containerBefore = runServiceContainer({ name: CONTAINER, image: `${REPO}:1.0.0`, port: PORT });
    assert.equal(await healthyVersion(PORT), '1.0.0');
    await sleep(1100); // `expired` expires one second after it was built
  });

  after(() => {
    removeContainers(CONTAINER, `${CONTAINER}.caisson-prev`);
    removeImages(`${REPO}:1.0.0`, `${REPO}:1.1.0`);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const load = (pkg: string) => runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), '--config', agentToml, pkg]);

  async function expectUntouched(): Promise<void> {
    assert.equal(containerInfo(CONTAINER)?.id, containerBefore, 'the same container');
    assert.equal(await healthyVersion(PORT), '1.0.0');
    assert.equal(imageExists(`${REPO}:1.1.0`), false, 'nothing imported');
    assert.deepEqual(stagingLeft(f.stateDir), []);
  }

  it('rejects an expired package with policy.expired (exit 2), naming both times; service untouched', async () => {
    const r = await load(pk.expired!);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.json.outcome, 'rejected');
    assert.equal(r.json.error.code, 'policy.expired');
    assert.match(r.json.error.message, /expired at \d{4}-\d\d-\d\dT.*clock says \d{4}-/);
    await expectUntouched();
  });

  // every kind of target (class, IDs, both) is test/unit/pipeline/freshness.test.ts; other IDs
  // through the real CLI are the last test's device of the same class
  it('rejects a package for another device class with manifest.not_for_this_device (exit 2), naming this device; service untouched', async () => {
    const r = await load(pk.otherClass!);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.json.error.code, 'manifest.not_for_this_device');
    assert.ok(r.json.error.message.includes(device.id), r.json.error.message);
    assert.ok(r.json.error.message.includes('"kiosk-v2"'), r.json.error.message);
    await expectUntouched();
  });

  it('the text result says the same in one line (exit 2)', async () => {
    const r = await runCli(['package', 'validate', ...commonArgs(f), '--config', agentToml, pk.otherClass!]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stdout, /^rejected: .*\(manifest\.not_for_this_device\): the package is for device class "gateway", not for this device \(ID [a-z2-7-]+, class "kiosk-v2"\)/);
  });

  it('applies a package for this device (its class and ID, not expired); another device of the class would not take it', async () => {
    const elsewhere = join(work, 'elsewhere', 'agent.toml');
    mkdirSync(join(work, 'elsewhere'));
    writeFileSync(elsewhere, 'device_class = "kiosk-v2"\n');
    const stranger = await runCli(['package', 'validate', '--json', ...commonArgs(f), '--config', elsewhere, pk.forMe!]);
    assert.equal(stranger.code, 2, stranger.stderr);
    assert.equal(stranger.json.error.code, 'manifest.not_for_this_device');
    assert.ok(stranger.json.error.message.includes('ID unknown'));
    assert.equal(existsSync(join(work, 'elsewhere', 'device.key')), false, 'the CLI reads an identity, never makes one');

    const r = await load(pk.forMe!);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.outcome, 'committed');
    assert.equal(await healthyVersion(PORT), '1.1.0');
  });
});
