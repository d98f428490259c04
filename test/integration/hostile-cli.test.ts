// Hostile packages of test/support/hostile.ts through `caisson package load --yes --json`
// against a real engine and a real running service: exit 2, outcome rejected with the case's
// own code, no container or image changed, nothing written outside the state dir, and the
// CLI exits normally (no crash, no hang).
//
// Every case of the corpus is refused with its own code by the reader and the checks in
// test/unit/hostile-corpus.test.ts (no engine, same code path the CLI runs). Here one case per
// error code, the first of the corpus with that code, proves that the real CLI turns each code
// into its exit status and JSON and that a refusal leaves the engine and the disk alone.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createHostileContext, hostileCases, type HostileCase, type HostileContext } from '../support/hostile.js';
import {
  buildTestImage,
  commonArgs,
  containerInfo,
  docker,
  dockerServiceFixture,
  ensureBuilt,
  healthyVersion,
  history,
  removeContainers,
  removeImages,
  runCli,
  runServiceContainer,
  stagingLeft,
  type CliFixture,
} from './pipeline-support.js';

const CONTAINER = 'caisson-sec-hostile-svc';
const PORT = 18350;
const RUNNING = 'caisson-sec-hostile/web:current';
const PACKAGED = 'caisson-sec-hostile/web:1.0.0';
/** Every reference a hostile case names, so their tags are part of the snapshot. */
const WATCHED_REPOS = ['caisson-sec-hostile/', 'caisson-pkgtest/other:', 'caisson-pkgtest/second:', 'busybox:'];

/** The containers and images these tests could affect, as comparable text (three docker calls). */
function engineSnapshot(): string {
  const containers = docker('ps', '-a', '--no-trunc', '--filter', 'name=^/caisson-sec-hostile-', '--format', '{{.ID}} {{.Names}} {{.Image}} {{.State}}')
    .split('\n')
    .filter(Boolean)
    .sort();
  const ids = containers.map((line) => line.split(' ')[0]!);
  const started = ids.length ? docker('inspect', '-f', '{{.Id}} {{.State.StartedAt}}', ...ids).split('\n').sort() : [];
  const images = docker('images', '--no-trunc', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}')
    .split('\n')
    .filter((l) => WATCHED_REPOS.some((p) => l.startsWith(p)))
    .sort();
  return [...containers, ...started, ...images].join('\n');
}

/** Paths (with sizes) under root, skipping the given top-level names. */
function tree(root: string, skip: string[] = []): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (dir === root && skip.includes(name)) continue;
      const st = statSync(p, { throwIfNoEntry: false });
      out.push(`${relative(root, p)} ${st?.isFile() ? st.size : 'dir'}`);
      if (st?.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out.sort();
}

/** The one case the CLI refuses before the pipeline sees it. */
const USAGE_ERROR = 'package.not_found';

/** The first case of the corpus for each error code. */
function onePerCode(all: HostileCase[]): HostileCase[] {
  const seen = new Set<string>();
  return all.filter((c) => !seen.has(c.expectCode) && seen.add(c.expectCode));
}

describe('hostile packages through the CLI (real engine, running service)', function () {
  this.timeout(600_000);
  const corpus = hostileCases();
  const cases = onePerCode(corpus);
  let work: string;
  let ctx: HostileContext;
  let fixture: CliFixture;
  let casesDir: string;
  let containerBefore: string;
  let engineBefore: string;

  before(async function () {
    this.timeout(300_000);
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'caisson-sec-hostile-'));
    buildTestImage({ ref: RUNNING, version: 'running' });
    buildTestImage({ ref: PACKAGED, version: '1.0.0' });
    ctx = await createHostileContext(work, { imageRef: PACKAGED });
    // the package image is not on the device
    removeImages(PACKAGED);
    casesDir = join(work, 'cases');
    mkdirSync(casesDir);
    fixture = dockerServiceFixture(work, { name: ctx.service.name, revision: ctx.service.revision, container: CONTAINER, image: RUNNING, port: PORT });
    removeContainers(CONTAINER);
    containerBefore = runServiceContainer({ name: CONTAINER, image: RUNNING, port: PORT });
    expect(await healthyVersion(PORT)).to.equal('running');
    engineBefore = engineSnapshot();
  });

  after(() => {
    removeContainers(CONTAINER);
    removeImages(RUNNING, PACKAGED);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('has a corpus of at least 40 cases, and a case here for each of its error codes', () => {
    expect(corpus.length).to.be.at.least(40);
    expect(new Set(cases.map((c) => c.expectCode))).to.deep.equal(new Set(corpus.map((c) => c.expectCode)));
  });

  for (const c of cases) {
    it(`rejects "${c.name}" with ${c.expectCode}`, async () => {
      const dir = join(casesDir, c.name.replace(/[^a-z0-9]+/gi, '-'));
      const path = c.build(dir, ctx);
      const casesBefore = tree(work, ['state']);

      const r = await runCli(['package', 'load', '--yes', '--json', ...commonArgs({ ...fixture, keysDir: c.trustedKeys ? ctx.trustedKeyDir : join(work, 'no-keys') }), path], {
        timeoutMs: 60_000,
      });
      expect(r.signal, 'the CLI must exit, not crash or hang').to.equal(null);
      if (c.expectCode === USAGE_ERROR) {
        // a path that does not exist is the operator's typo, caught before anything opens:
        // exit 1 with the code, and no history record (see the last test)
        expect(r.code, r.stderr + r.stdout).to.equal(1);
        expect(r.json?.outcome, r.stdout).to.equal('error');
      } else {
        expect(r.code, r.stderr + r.stdout).to.equal(2);
        expect(r.json?.outcome, r.stdout).to.equal('rejected');
      }
      expect(r.json.error?.code, r.json.error?.message).to.equal(c.expectCode);
      expect(r.stderr).to.not.match(/at .*\.js:\d+|TypeError|RangeError|heap/);

      expect(engineSnapshot(), 'no container or image may change (since the first case)').to.equal(engineBefore);
      expect(tree(work, ['state']), 'nothing written outside the state dir').to.deep.equal(casesBefore);
      expect(stagingLeft(fixture.stateDir)).to.deep.equal([]);
      // the state dir holds the database, the lock and the logs, nothing the package named
      const top = readdirSync(fixture.stateDir).sort();
      for (const name of top) expect(name).to.match(/^(caisson\.db(-wal|-shm)?|lock\.db(-journal)?|lock\.owner|logs|staging)$/);
    });
  }

  it('left the running service alone: same container, still healthy, every package case in history as rejected', async () => {
    expect(containerInfo(CONTAINER)?.id).to.equal(containerBefore);
    expect(await healthyVersion(PORT)).to.equal('running');
    const records = (await history(fixture)).filter((r) => r.kind === 'update');
    const recorded = cases.filter((c) => c.expectCode !== USAGE_ERROR).length;
    expect(records).to.have.length(Math.min(recorded, 100));
    expect(records.every((r) => r.outcome === 'rejected')).to.equal(true);
  });
});
