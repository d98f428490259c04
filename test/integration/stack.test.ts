// Stack packages on the real engine, through the compiled CLI: one package updates three
// services, all or nothing. api and worker run in docker mode; front is a compose service of
// a project whose sidecar ("cache") the catalog does not name and no update may touch.
//   - the stack commits: all three answer the new version, the sidecar is the same container;
//   - the third service fails its health check: all three answer the old version again, the
//     docker-mode ones in their own old containers, the sidecar untouched;
//   - the second image is corrupt: rejected, nothing stopped or restarted;
//   - killed (CAISSON_FAULT_KILL_AFTER) mid-rollback of the compose member, then `caisson
//     recover`: the whole stack back on the old side, the docker-mode members reversed by the
//     same recovery. Every other point is a unit test
//     (test/unit/pipeline/stack-crash-points.test.ts); a compose `up` cut short mid-switch is
//     also test/integration/crash-recovery.test.ts's compose case on the real engine.
// The test images' httpd ignores SIGTERM as PID 1, so every stop here kills at once (catalog
// stop_timeout_secs 0, compose stop_grace_period 0s, docker run --stop-timeout 0): a
// graceful stop would only wait out its timeout.
// Objects: caisson-stack-* containers and images, compose project caisson-stack-shop, ports 18731–18734.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildTestImage,
  commonArgs,
  compose,
  composeAsync,
  composeContainerIds,
  composeServiceToml,
  docker,
  dockerAsync,
  dockerQuiet,
  dockerServiceToml,
  ensureBuilt,
  existingContainers,
  hasImage,
  healthyVersion,
  history,
  inspectContainer,
  OWN_LABEL,
  removeContainersNow,
  removeImagesNow,
  runCli,
  stagingLeft,
  untagImages,
  writeText,
} from './pipeline-support.js';
import { buildStackPackage } from '../support/stack-package.js';

const REPO = 'caisson-stack';
const PROJECT = 'caisson-stack-shop';
// the docker-mode services' own network (as a device's would be; compose makes the project's)
const NETWORK = 'caisson-stack-net';
const PORT = { api: 18731, front: 18732, worker: 18733, cache: 18734 } as const;
const CONTAINER = { api: 'caisson-stack-api', worker: 'caisson-stack-worker' } as const;
const PARKED = Object.values(CONTAINER).map((c) => `${c}.caisson-prev`);
type Svc = 'api' | 'front' | 'worker';
const ORDER: Svc[] = ['api', 'front', 'worker'];
const ref = (svc: string, v: string) => `${REPO}/${svc}:${v}`;
const NEW_REFS = [...ORDER.map((s) => ref(s, '2.1.0')), ref('worker', '2.1.1')];
const OLD_REFS = [...ORDER.map((s) => ref(s, '2.0.0')), ref('cache', '1')];

type Side = 'old' | 'new';
/** Health windows and stops of the catalog: short, the stable window still longer than one poll. */
const FAST = { stableSecs: 0.3, stopTimeoutSecs: 0 };

/** Where a load is killed: each time the recovery must put the whole stack back (reverse). */
interface CrashCase {
  point: string;
  pkg: 'good' | 'thirdFails';
  /** The error code of the closed record. */
  code: string;
}

const CRASHES: CrashCase[] = [
  // mid-rollback: worker already back, front's rollback `up` cut short, api not yet back
  { point: 'rolling_back.front.compose_up', pkg: 'thirdFails', code: 'service.start_failed' },
];

describe('stack packages (real engine, CLI)', function () {
  this.timeout(300_000);
  let work: string;
  let composeFile: string;
  let f: { servicesPath: string; stateDir: string; keysDir: string };
  const pkgs = { good: '', thirdFails: '', corruptSecond: '' };
  /** The IDs of the images built here, removed at the end once nothing tags them. */
  const built: string[] = [];

  before(async function () {
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'caisson-stack-'));
    const keysDir = join(work, 'no-keys');
    mkdirSync(keysDir);
    for (const s of ORDER) {
      built.push(buildTestImage({ ref: ref(s, '2.0.0'), version: `${s} 2.0.0` }));
      built.push(buildTestImage({ ref: ref(s, '2.1.0'), version: `${s} 2.1.0` }));
    }
    built.push(buildTestImage({ ref: ref('worker', '2.1.1'), version: 'worker 2.1.1', behaviour: 'exit' }));
    built.push(buildTestImage({ ref: ref('cache', '1'), version: 'cache 1' }));
    if (dockerQuiet('network', 'inspect', NETWORK) !== 0) docker('network', 'create', '--label', OWN_LABEL, NETWORK);
    composeFile = writeText(
      join(work, 'compose', 'docker-compose.yml'),
      `version: "2.4"
services:
  front:
    image: ${ref('front', '2.0.0')}
    stop_grace_period: 0s
    labels:
      caisson.test: own
    ports:
      - "127.0.0.1:${PORT.front}:8080"
  cache:
    image: ${ref('cache', '1')}
    stop_grace_period: 0s
    labels:
      caisson.test: own
    ports:
      - "127.0.0.1:${PORT.cache}:8080"
`,
    );
    const servicesPath = writeText(
      join(work, 'services.toml'),
      [
        'catalog_version = 1\n',
        dockerServiceToml({ name: 'api', revision: 'api-v1', container: CONTAINER.api, image: ref('api', '2.0.0'), port: PORT.api, ...FAST }),
        composeServiceToml({ name: 'front', revision: 'front-v1', project: PROJECT, file: composeFile, service: 'front', port: PORT.front, ...FAST }),
        dockerServiceToml({ name: 'worker', revision: 'worker-v1', container: CONTAINER.worker, image: ref('worker', '2.0.0'), port: PORT.worker, ...FAST, timeoutSecs: 5 }),
      ].join('\n'),
    );
    f = { servicesPath, stateDir: join(work, 'state'), keysDir };
    const entry = (s: Svc, v: string, image = ref(s, v)) => ({ service: s, revision: `${s}-v1`, version: v, reference: image });
    pkgs.good = buildStackPackage({ name: 'shop', version: '2.1.0', services: ORDER.map((s) => entry(s, '2.1.0')), out: join(work, 'pkg', 'stack-2.1.0.edgepkg') });
    pkgs.thirdFails = buildStackPackage({
      name: 'shop',
      version: '2.1.1',
      services: [entry('api', '2.1.0'), entry('front', '2.1.0'), entry('worker', '2.1.1')],
      out: join(work, 'pkg', 'stack-2.1.1.edgepkg'),
    });
    pkgs.corruptSecond = buildStackPackage({
      name: 'shop',
      version: '2.1.0',
      services: ORDER.map((s) => entry(s, '2.1.0')),
      corruptImage: ref('front', '2.1.0'),
      out: join(work, 'pkg', 'stack-2.1.0-corrupt.edgepkg'),
    });
    // a device has the packages, not their images: every reset() untags them
  });

  after(async () => {
    await removeContainersNow(...Object.values(CONTAINER), ...PARKED);
    try {
      if (composeFile) compose(PROJECT, composeFile, 'down', '--remove-orphans', '--timeout', '0');
    } catch {
      // nothing to take down
    }
    await removeImagesNow([...NEW_REFS, ...OLD_REFS], built);
    dockerQuiet('network', 'rm', NETWORK);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  interface Before {
    api: string;
    worker: string;
    front: string;
    cache: string;
    started: Record<string, string>;
  }

  /** Fresh state dir; every service on 2.0.0 and answering; the new images absent. */
  async function reset(): Promise<Before> {
    rmSync(f.stateDir, { recursive: true, force: true });
    await removeContainersNow(...Object.values(CONTAINER), ...PARKED);
    await untagImages(...NEW_REFS);
    await Promise.all([
      ...(['api', 'worker'] as const).map((s) =>
        dockerAsync('run', '-d', '--name', CONTAINER[s], '--network', NETWORK, '--label', OWN_LABEL, '--stop-timeout', '0', '-p', `127.0.0.1:${PORT[s]}:8080`, ref(s, '2.0.0')),
      ),
      // without Caisson's override, from the developer's file alone: every service of the project fresh
      composeAsync(PROJECT, composeFile, 'up', '-d', '--force-recreate', '--remove-orphans'),
    ]);
    const versions = await Promise.all(ORDER.map((s) => healthyVersion(PORT[s])));
    assert.deepEqual(versions, ORDER.map((s) => `${s} 2.0.0`));
    const [front, cache] = await Promise.all([composeContainerIds(PROJECT, 'front'), composeContainerIds(PROJECT, 'cache')]);
    const ids = { api: CONTAINER.api, worker: CONTAINER.worker, front: front[0]!, cache: cache[0]! };
    const seen = await Promise.all(Object.values(ids).map((id) => inspectContainer(id)));
    const [api, worker] = seen;
    const started = Object.fromEntries(Object.keys(ids).map((k, i) => [k, seen[i]!.State.StartedAt]));
    return { ...ids, api: api!.Id, worker: worker!.Id, started };
  }

  /** Every service answers `side`'s version in one container; the sidecar is the same container, never restarted. */
  async function expectWhole(side: Side, before: Before): Promise<void> {
    const version = side === 'new' ? '2.1.0' : '2.0.0';
    const answers = await Promise.all([...ORDER, 'cache'].map((s) => healthyVersion(PORT[s as keyof typeof PORT])));
    assert.deepEqual(answers, [...ORDER.map((s) => `${s} ${version}`), 'cache 1'], 'every service answers');
    assert.deepEqual(await existingContainers(...PARKED), [], 'nothing parked');
    assert.equal((await composeContainerIds(PROJECT, 'front')).length, 1, 'one front container');
    for (const s of ['api', 'worker'] as const) {
      const now = (await inspectContainer(CONTAINER[s]))!;
      assert.equal(now.State.Running, true, `${s} runs`);
      if (side === 'old') assert.equal(now.Id, before[s], `the old ${s} container itself serves again`);
      else assert.equal(now.Config.Image, ref(s, '2.1.0'));
    }
    assert.deepEqual(await composeContainerIds(PROJECT, 'cache'), [before.cache], 'the sidecar is the same container');
    const cache = (await inspectContainer(before.cache))!;
    assert.deepEqual([cache.State.Running, cache.State.StartedAt], [true, before.started.cache], 'the sidecar was never restarted');
    if (side === 'old') for (const r of NEW_REFS) assert.equal(await hasImage(r), false, `${r} untagged`);
    assert.deepEqual(stagingLeft(f.stateDir), []);
  }

  it('commits a three-service stack (two docker-mode, one compose); history, service list and --json show each service', async () => {
    const before = await reset();
    const load = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), pkgs.good]);
    assert.equal(load.code, 0, load.stderr);
    const { outcome, stack, package_version } = load.json;
    assert.deepEqual({ outcome, stack, package_version }, { outcome: 'committed', stack: 'shop', package_version: '2.1.0' });
    assert.deepEqual(
      load.json.services.map((m: any) => [m.service, m.state, m.to_version, m.to_image]),
      ORDER.map((s) => [s, 'committed', '2.1.0', ref(s, '2.1.0')]),
    );
    await expectWhole('new', before);

    const shown = await runCli(['history', 'show', 'last', ...commonArgs(f)]);
    assert.match(shown.stdout, /committed stack shop 2\.1\.0/);
    assert.match(shown.stdout, /services \(in switch order\):\n {2}api .*committed\n {2}front .*committed\n {2}worker .*committed/);
    assert.ok(shown.stdout.includes('switching.front.compose_up'), shown.stdout);
    const list = await runCli(['service', 'list', '--json', ...commonArgs(f)]);
    assert.deepEqual(
      list.json.map((v: any) => [v.name, v.installed_version, v.installed_stack]),
      ORDER.map((s) => [s, '2.1.0', { name: 'shop', version: '2.1.0' }]),
    );
    const text = await runCli(['service', 'list', ...commonArgs(f)]);
    assert.match(text.stdout, /worker\s+docker\s+running\s+caisson-stack\/worker:2\.1\.0\s+2\.1\.0\s+shop 2\.1\.0\s+committed/);
  });

  it('a stack whose third service fails its health check leaves all three on their old versions, healthy; the sidecar untouched', async () => {
    const before = await reset();
    const load = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), pkgs.thirdFails]);
    assert.equal(load.code, 3, load.stderr);
    assert.equal(load.json.outcome, 'rolled_back');
    assert.ok(['service.start_failed', 'health.timeout'].includes(load.json.error.code), load.json.error.code);
    assert.deepEqual(load.json.services.map((m: any) => m.state), ['restored', 'restored', 'restored']);
    await expectWhole('old', before);
    const records = (await history(f)).filter((r) => r.kind === 'update');
    assert.equal(records.length, 1);
    const steps: string[] = (await runCli(['history', 'show', '--json', records[0].update_id, ...commonArgs(f)])).json.steps.map((s: any) => s.state);
    assert.deepEqual(steps.filter((s) => /^rolling_back\.[a-z]+$/.test(s)), ['rolling_back.worker', 'rolling_back.front', 'rolling_back.api']);
  });

  it('a stack whose second image is corrupt is rejected with nothing stopped', async () => {
    const before = await reset();
    const load = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), pkgs.corruptSecond]);
    assert.equal(load.code, 2, load.stderr);
    assert.equal(load.json.outcome, 'rejected');
    assert.match(load.json.error.code, /^(docker\.load_failed|image\.)/);
    assert.deepEqual(load.json.services.map((m: any) => m.state), ['pending', 'pending', 'pending']);
    await expectWhole('old', before);
    // nothing was stopped or restarted
    for (const [k, id] of Object.entries({ api: before.api, worker: before.worker, front: before.front })) {
      assert.equal((await inspectContainer(id))!.State.StartedAt, before.started[k], `${k} never restarted`);
    }
  });

  for (const c of CRASHES) {
    it(`killed after "${c.point}" (${c.pkg}), then recover → rolled_back, the whole stack old`, async () => {
      const before = await reset();
      const load = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), pkgs[c.pkg]], { env: { CAISSON_FAULT_KILL_AFTER: c.point } });
      assert.equal(load.signal, 'SIGKILL', `load should have been killed at ${c.point}; exit ${load.code}: ${load.stderr}`);
      const rec = await runCli(['recover', '--json', ...commonArgs(f)]);
      assert.equal(rec.code, 0, rec.stderr + rec.stdout);
      assert.deepEqual(rec.json.recovered.map((r: any) => r.outcome), ['rolled_back']);
      await expectWhole('old', before);
      const records = (await history(f)).filter((r) => r.kind === 'update');
      assert.deepEqual(records.map((r) => r.outcome), ['rolled_back']);
      assert.equal(records[0].error?.code, c.code);
      const again = await runCli(['recover', '--json', ...commonArgs(f)]);
      assert.deepEqual(again.json.recovered, []);
    });
  }
});
