// The state-dir lock keeps a second changing `caisson` out while one runs; and container
// environment values never reach the state dir (logs, history, journal) nor the CLI output.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildPackage,
  buildTestImage,
  commonArgs,
  containerInfo,
  docker,
  dockerServiceFixture,
  ensureBuilt,
  fileContains,
  filesUnder,
  healthyVersion,
  history,
  latestUpdateState,
  removeContainers,
  removeImages,
  runCli,
  runServiceContainer,
  waitFor,
  type CliFixture,
} from './pipeline-support.js';

const REPO = 'caisson-sec-lock/web';
const CONTAINER = 'caisson-sec-lock-web';
const PORT = 18370;
const SECRET = 'sk_live_CaissonTopSecret_9f8e7d6c5b4a';

describe('state-dir lock and secrets (CLI, real engine)', function () {
  this.timeout(300_000);
  let work: string;
  let f: CliFixture;
  const pk: Record<string, string> = {};

  before(async function () {
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'caisson-sec-lock-'));
    f = dockerServiceFixture(work, { name: 'lock', revision: 'lock-v1', container: CONTAINER, image: `${REPO}:1.0.0`, port: PORT, timeoutSecs: 3 });
    buildTestImage({ ref: `${REPO}:1.0.0`, version: '1.0.0' });
    buildTestImage({ ref: `${REPO}:1.1.0`, version: '1.1.0' });
    buildTestImage({ ref: `${REPO}:1.2.0`, version: '1.2.0', behaviour: 'no-health' });
    const b = (v: string) => buildPackage({ image: `${REPO}:${v}`, service: 'lock', revision: 'lock-v1', version: v, out: join(work, 'pkg', `${v}.edgepkg`) });
    pk.good = await b('1.1.0');
    pk.unhealthy = await b('1.2.0');
    removeImages(`${REPO}:1.1.0`, `${REPO}:1.2.0`);
    removeContainers(CONTAINER);
    runServiceContainer({ name: CONTAINER, image: `${REPO}:1.0.0`, port: PORT, env: [`API_TOKEN=${SECRET}`, 'MODE=edge'] });
    assert.equal(await healthyVersion(PORT), '1.0.0');
  });

  after(() => {
    removeContainers(CONTAINER, `${CONTAINER}.caisson-prev`);
    removeImages(`${REPO}:1.0.0`, `${REPO}:1.1.0`, `${REPO}:1.2.0`);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('refuses a second `package load` while one runs: update.busy, exit 1, a clear message', async () => {
    // 1.2.0 never answers /health: the first load sits in its health window, holding the lock;
    // paused there (SIGSTOP), it holds it however slowly the others start, and once resumed its
    // window is over (health.timeout)
    const first = runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), pk.unhealthy!]);
    await waitFor('the first load to reach its health check', () => latestUpdateState(f.stateDir) === 'health_checking', 60_000, 20);
    const holder = Number(/^pid (\d+),/.exec(readFileSync(join(f.stateDir, 'lock.owner'), 'utf8'))![1]);
    process.kill(holder, 'SIGSTOP');
    let second, secondJson;
    try {
      [second, secondJson] = await Promise.all([
        runCli(['package', 'load', '--yes', ...commonArgs(f), pk.good!]),
        runCli(['recover', '--json', ...commonArgs(f)]),
      ]);
    } finally {
      process.kill(holder, 'SIGCONT');
    }
    assert.equal(second.code, 1);
    assert.match(second.stderr, /^error update\.busy: another Caisson process \(pid \d+, package load, since [^)]+\) is changing /m);
    assert.match(second.stderr, /next: Another Caisson process holds the state folder; wait for it to finish\./);
    assert.equal(secondJson.code, 1);
    assert.equal(secondJson.json.error.code, 'update.busy');

    const r = await first;
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.json.outcome, 'rolled_back');
    assert.equal(r.json.error.code, 'health.timeout');
    assert.equal(await healthyVersion(PORT), '1.0.0');
    // only the first one left a record; the refused one changed nothing
    const records = (await history(f)).filter((x) => x.kind === 'update');
    assert.equal(records.length, 1);

    // the lock is free again once the first is done
    const after = await runCli(['recover', '--json', ...commonArgs(f)]);
    assert.equal(after.code, 0, after.stderr);
  });

  it('never writes container environment values to the state dir, history or CLI output', async () => {
    const r = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), pk.good!]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await healthyVersion(PORT), '1.1.0');
    // the recreated container kept its environment (so the secret really was in play)
    assert.ok((docker('inspect', '-f', '{{json .Config.Env}}', CONTAINER)).includes(`API_TOKEN=${SECRET}`));
    assert.equal(containerInfo(CONTAINER)?.image, `${REPO}:1.1.0`);

    const outputs = [r.stdout, r.stderr];
    for (const rec of (await history(f)).filter((x) => x.kind === 'update')) {
      const show = await runCli(['history', 'show', '--json', rec.update_id, ...commonArgs(f)]);
      outputs.push(show.stdout, show.stderr);
    }
    const list = await runCli(['service', 'show', '--json', 'lock', ...commonArgs(f)]);
    outputs.push(list.stdout);
    for (const out of outputs) assert.ok(!out.includes(SECRET));

    const files = filesUnder(f.stateDir);
    assert.equal(files.some((p) => p.endsWith('caisson.log')), true);
    assert.equal(files.some((p) => p.endsWith('caisson.db')), true);
    for (const file of files) assert.equal(fileContains(file, SECRET), false, `${file} holds the secret`);
  });
});
