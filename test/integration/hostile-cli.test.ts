// Hostile packages of test/support/hostile.ts through `caisson package load --yes --json`
// against a real engine and a real running service: exit 2, outcome rejected with the case's
// own code, no container or image changed, nothing written outside the state dir, and the
// CLI exits normally (no crash, no hang).
//
// Every case of the corpus is refused with its own code by the reader and the checks in
// test/unit/hostile-corpus.test.ts (no engine, same code path the CLI runs), and the exit
// status depends on the outcome alone (agent/cli/exit-codes.ts). Here one case per family of
// codes (package, manifest, integrity, image, signature, policy: the first of the corpus in
// each), and the one refused before anything opens (package.not_found), prove that the real
// CLI turns a refusal into its exit status and JSON and that it leaves the engine and the disk
// alone.
import assert from 'node:assert/strict';
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

/** The family of an error code: `package`, `manifest`, `integrity`, `image`, `signature`, `policy`. */
const familyOf = (code: string): string => code.split('.')[0]!;

/** The first case of the corpus in each family of codes, and the usage error. */
function onePerFamily(all: HostileCase[]): HostileCase[] {
  const seen = new Set<string>();
  return all.filter((c) => {
    const key = c.expectCode === USAGE_ERROR ? USAGE_ERROR : familyOf(c.expectCode);
    return !seen.has(key) && seen.add(key);
  });
}

describe('hostile packages through the CLI (real engine, running service)', function () {
  this.timeout(600_000);
  const corpus = hostileCases();
  const cases = onePerFamily(corpus);
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
    assert.equal(await healthyVersion(PORT), 'running');
    engineBefore = engineSnapshot();
  });

  after(() => {
    removeContainers(CONTAINER);
    removeImages(RUNNING, PACKAGED);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('has a corpus of at least 40 cases, and a case here for each family of its error codes', () => {
    assert.ok(corpus.length >= 40);
    assert.deepEqual(new Set(cases.map((c) => familyOf(c.expectCode))), new Set(corpus.map((c) => familyOf(c.expectCode))));
    assert.ok(cases.some((c) => c.expectCode === USAGE_ERROR));
  });

  for (const c of cases) {
    it(`rejects "${c.name}" with ${c.expectCode}`, async () => {
      const dir = join(casesDir, c.name.replace(/[^a-z0-9]+/gi, '-'));
      const path = c.build(dir, ctx);
      const casesBefore = tree(work, ['state']);

      const r = await runCli(['package', 'load', '--yes', '--json', ...commonArgs({ ...fixture, keysDir: c.trustedKeys ? ctx.trustedKeyDir : join(work, 'no-keys') }), path], {
        timeoutMs: 60_000,
      });
      assert.equal(r.signal, null, 'the CLI must exit, not crash or hang');
      if (c.expectCode === USAGE_ERROR) {
        // a path that does not exist is the operator's typo, caught before anything opens:
        // exit 1 with the code, and no history record (see the last test)
        assert.equal(r.code, 1, r.stderr + r.stdout);
        assert.equal(r.json?.outcome, 'error', r.stdout);
      } else {
        assert.equal(r.code, 2, r.stderr + r.stdout);
        assert.equal(r.json?.outcome, 'rejected', r.stdout);
      }
      assert.equal(r.json.error?.code, c.expectCode, r.json.error?.message);
      assert.doesNotMatch(r.stderr, /at .*\.js:\d+|TypeError|RangeError|heap/);

      assert.equal(engineSnapshot(), engineBefore, 'no container or image may change (since the first case)');
      assert.deepEqual(tree(work, ['state']), casesBefore, 'nothing written outside the state dir');
      assert.deepEqual(stagingLeft(fixture.stateDir), []);
      // the state dir holds the database, the lock and the logs, nothing the package named
      const top = readdirSync(fixture.stateDir).sort();
      for (const name of top) assert.match(name, /^(caisson\.db(-wal|-shm)?|lock\.db(-journal)?|lock\.owner|logs|staging)$/);
    });
  }

  it('left the running service alone: same container, still healthy, every package case in history as rejected', async () => {
    assert.equal(containerInfo(CONTAINER)?.id, containerBefore);
    assert.equal(await healthyVersion(PORT), 'running');
    const records = (await history(fixture)).filter((r) => r.kind === 'update');
    const recorded = cases.filter((c) => c.expectCode !== USAGE_ERROR).length;
    assert.equal(records.length, Math.min(recorded, 100));
    assert.equal(records.every((r) => r.outcome === 'rejected'), true);
  });
});
