// Stack packages on the real engine, through the compiled CLI: one package updates three
// services, all or nothing. api and worker run in docker mode; front is a compose service of
// a project whose sidecar ("cache") the catalog does not name and no update may touch.
//   - the stack commits: all three answer the new version, the sidecar is the same container;
//   - the third service fails its health check: all three answer the old version again, the
//     docker-mode ones in their own old containers, the sidecar untouched;
//   - the second image is corrupt: rejected, nothing stopped or restarted;
//   - killed (CAISSON_FAULT_KILL_AFTER) at representative steps, then `caisson recover`: the
//     whole stack on one side. Every point is a unit test (test/unit/pipeline/stack-crash-points.test.ts).
// Objects: caisson-stack-* containers and images, compose project caisson-stack-shop, ports 18731–18734.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildTestImage,
  commonArgs,
  compose,
  composeContainers,
  composeServiceToml,
  containerInfo,
  containersNamed,
  docker,
  dockerServiceToml,
  ensureBuilt,
  healthyVersion,
  history,
  imageExists,
  removeContainers,
  dockerQuiet,
  OWN_LABEL,
  removeImages,
  runCli,
  stagingLeft,
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

interface CrashCase {
  point: string;
  pkg: 'good' | 'thirdFails';
  side: Side;
  outcome: 'rejected' | 'rolled_back' | 'committed';
  code?: string;
}

const CRASHES: CrashCase[] = [
  { point: 'loading_image', pkg: 'good', side: 'old', outcome: 'rejected', code: 'update.interrupted' },
  { point: 'switching.api.park_old', pkg: 'good', side: 'old', outcome: 'rolled_back', code: 'update.interrupted' },
  { point: 'switching.front.compose_up', pkg: 'good', side: 'old', outcome: 'rolled_back', code: 'update.interrupted' },
  { point: 'health_checking.worker', pkg: 'good', side: 'old', outcome: 'rolled_back', code: 'update.interrupted' },
  { point: 'health_checking', pkg: 'good', side: 'old', outcome: 'rolled_back', code: 'update.interrupted' },
  { point: 'committing.api.remove_old', pkg: 'good', side: 'new', outcome: 'committed' },
  { point: 'rolling_back.front.compose_up', pkg: 'thirdFails', side: 'old', outcome: 'rolled_back', code: 'service.start_failed' },
];

describe('stack packages (real engine, CLI)', function () {
  this.timeout(600_000);
  let work: string;
  let composeFile: string;
  let f: { servicesPath: string; stateDir: string; keysDir: string };
  const pkgs = { good: '', thirdFails: '', corruptSecond: '' };

  before(async function () {
    this.timeout(300_000);
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'caisson-stack-'));
    const keysDir = join(work, 'no-keys');
    mkdirSync(keysDir);
    for (const s of ORDER) {
      buildTestImage({ ref: ref(s, '2.0.0'), version: `${s} 2.0.0` });
      buildTestImage({ ref: ref(s, '2.1.0'), version: `${s} 2.1.0` });
    }
    buildTestImage({ ref: ref('worker', '2.1.1'), version: 'worker 2.1.1', behaviour: 'exit' });
    buildTestImage({ ref: ref('cache', '1'), version: 'cache 1' });
    if (dockerQuiet('network', 'inspect', NETWORK) !== 0) docker('network', 'create', '--label', OWN_LABEL, NETWORK);
    composeFile = writeText(
      join(work, 'compose', 'docker-compose.yml'),
      `version: "2.4"
services:
  front:
    image: ${ref('front', '2.0.0')}
    stop_grace_period: 1s
    labels:
      caisson.test: own
    ports:
      - "127.0.0.1:${PORT.front}:8080"
  cache:
    image: ${ref('cache', '1')}
    stop_grace_period: 1s
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
        dockerServiceToml({ name: 'api', revision: 'api-v1', container: CONTAINER.api, image: ref('api', '2.0.0'), port: PORT.api }),
        composeServiceToml({ name: 'front', revision: 'front-v1', project: PROJECT, file: composeFile, service: 'front', port: PORT.front }),
        dockerServiceToml({ name: 'worker', revision: 'worker-v1', container: CONTAINER.worker, image: ref('worker', '2.0.0'), port: PORT.worker, timeoutSecs: 5 }),
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
    // a device has the packages, not their images
    removeImages(...NEW_REFS);
  });

  after(() => {
    removeContainers(...Object.values(CONTAINER), ...PARKED);
    try {
      if (composeFile) compose(PROJECT, composeFile, 'down', '--remove-orphans');
    } catch {
      // nothing to take down
    }
    removeImages(...NEW_REFS, ...OLD_REFS);
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
    removeContainers(...Object.values(CONTAINER), ...PARKED);
    try {
      compose(PROJECT, composeFile, 'down', '--remove-orphans');
    } catch {
      // not up
    }
    removeImages(...NEW_REFS);
    for (const s of ['api', 'worker'] as const) {
      docker('run', '-d', '--name', CONTAINER[s], '--network', NETWORK, '--label', OWN_LABEL, '--stop-timeout', '1', '-p', `127.0.0.1:${PORT[s]}:8080`, ref(s, '2.0.0'));
    }
    compose(PROJECT, composeFile, 'up', '-d');
    for (const s of ORDER) expect(await healthyVersion(PORT[s]), s).to.equal(`${s} 2.0.0`);
    const ids = {
      api: containerInfo(CONTAINER.api)!.id,
      worker: containerInfo(CONTAINER.worker)!.id,
      front: composeContainers(PROJECT, 'front')[0]!,
      cache: composeContainers(PROJECT, 'cache')[0]!,
    };
    const started: Record<string, string> = {};
    for (const [k, id] of Object.entries(ids)) started[k] = docker('inspect', '-f', '{{.State.StartedAt}}', id);
    return { ...ids, started };
  }

  /** Every service answers `side`'s version in one container; the sidecar is the same container, never restarted. */
  async function expectWhole(side: Side, before: Before): Promise<void> {
    for (const s of ORDER) expect(await healthyVersion(PORT[s]), `${s} answers`).to.equal(`${s} ${side === 'new' ? '2.1.0' : '2.0.0'}`);
    expect(containersNamed(...PARKED), 'nothing parked').to.deep.equal([]);
    expect(composeContainers(PROJECT, 'front')).to.have.length(1);
    for (const s of ['api', 'worker'] as const) {
      const now = containerInfo(CONTAINER[s])!;
      expect(now.running, `${s} runs`).to.equal(true);
      if (side === 'old') expect(now.id, `the old ${s} container itself serves again`).to.equal(before[s]);
      else expect(now.image).to.equal(ref(s, '2.1.0'));
    }
    expect(composeContainers(PROJECT, 'cache'), 'the sidecar is the same container').to.deep.equal([before.cache]);
    expect(docker('inspect', '-f', '{{.State.Running}} {{.State.StartedAt}}', before.cache), 'the sidecar was never restarted').to.equal(`true ${before.started.cache}`);
    expect(await healthyVersion(PORT.cache)).to.equal('cache 1');
    for (const r of NEW_REFS) if (side === 'old') expect(imageExists(r), `${r} untagged`).to.equal(false);
    expect(stagingLeft(f.stateDir)).to.deep.equal([]);
  }

  it('commits a three-service stack (two docker-mode, one compose); history, service list and --json show each service', async () => {
    const before = await reset();
    const load = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), pkgs.good]);
    expect(load.code, load.stderr).to.equal(0);
    expect(load.json).to.deep.include({ outcome: 'committed', stack: 'shop', package_version: '2.1.0' });
    expect(load.json.services.map((m: any) => [m.service, m.state, m.to_version, m.to_image])).to.deep.equal(ORDER.map((s) => [s, 'committed', '2.1.0', ref(s, '2.1.0')]));
    await expectWhole('new', before);

    const shown = await runCli(['history', 'show', 'last', ...commonArgs(f)]);
    expect(shown.stdout).to.match(/committed stack shop 2\.1\.0/);
    expect(shown.stdout).to.match(/services \(in switch order\):\n {2}api .*committed\n {2}front .*committed\n {2}worker .*committed/);
    expect(shown.stdout).to.include('switching.front.compose_up');
    const list = await runCli(['service', 'list', '--json', ...commonArgs(f)]);
    expect(list.json.map((v: any) => [v.name, v.installed_version, v.installed_stack])).to.deep.equal(ORDER.map((s) => [s, '2.1.0', { name: 'shop', version: '2.1.0' }]));
    const text = await runCli(['service', 'list', ...commonArgs(f)]);
    expect(text.stdout).to.match(/worker\s+docker\s+running\s+caisson-stack\/worker:2\.1\.0\s+2\.1\.0\s+shop 2\.1\.0\s+committed/);
  });

  it('a stack whose third service fails its health check leaves all three on their old versions, healthy; the sidecar untouched', async () => {
    const before = await reset();
    const load = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), pkgs.thirdFails]);
    expect(load.code, load.stderr).to.equal(3);
    expect(load.json.outcome).to.equal('rolled_back');
    expect(load.json.error.code).to.be.oneOf(['service.start_failed', 'health.timeout']);
    expect(load.json.services.map((m: any) => m.state)).to.deep.equal(['restored', 'restored', 'restored']);
    await expectWhole('old', before);
    const records = (await history(f)).filter((r) => r.kind === 'update');
    expect(records).to.have.length(1);
    const steps: string[] = (await runCli(['history', 'show', '--json', records[0].update_id, ...commonArgs(f)])).json.steps.map((s: any) => s.state);
    expect(steps.filter((s) => /^rolling_back\.[a-z]+$/.test(s))).to.deep.equal(['rolling_back.worker', 'rolling_back.front', 'rolling_back.api']);
  });

  it('a stack whose second image is corrupt is rejected with nothing stopped', async () => {
    const before = await reset();
    const load = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), pkgs.corruptSecond]);
    expect(load.code, load.stderr).to.equal(2);
    expect(load.json.outcome).to.equal('rejected');
    expect(load.json.error.code).to.match(/^(docker\.load_failed|image\.)/);
    expect(load.json.services.map((m: any) => m.state)).to.deep.equal(['pending', 'pending', 'pending']);
    await expectWhole('old', before);
    // nothing was stopped or restarted
    for (const [k, id] of Object.entries({ api: before.api, worker: before.worker, front: before.front })) {
      expect(docker('inspect', '-f', '{{.State.StartedAt}}', id), `${k} never restarted`).to.equal(before.started[k]);
    }
  });

  for (const c of CRASHES) {
    it(`killed after "${c.point}" (${c.pkg}), then recover → ${c.outcome}, the whole stack ${c.side}`, async () => {
      const before = await reset();
      const load = await runCli(['package', 'load', '--yes', '--json', ...commonArgs(f), pkgs[c.pkg]], { env: { CAISSON_FAULT_KILL_AFTER: c.point } });
      expect(load.signal, `load should have been killed at ${c.point}; exit ${load.code}: ${load.stderr}`).to.equal('SIGKILL');
      const rec = await runCli(['recover', '--json', ...commonArgs(f)]);
      expect(rec.code, rec.stderr + rec.stdout).to.equal(0);
      expect(rec.json.recovered.map((r: any) => r.outcome)).to.deep.equal([c.outcome]);
      await expectWhole(c.side, before);
      const records = (await history(f)).filter((r) => r.kind === 'update');
      expect(records.map((r) => r.outcome)).to.deep.equal([c.outcome]);
      if (c.code) expect(records[0].error?.code).to.equal(c.code);
      else expect(records[0].error).to.equal(undefined);
      const again = await runCli(['recover', '--json', ...commonArgs(f)]);
      expect(again.json.recovered).to.deep.equal([]);
    });
  }
});
