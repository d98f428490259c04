// Every crash point of an update, in both runtime modes, on the fake engine: the update is
// killed right after the journal saved the point (see test/support/pipeline-harness.ts),
// then recovery runs in a fresh pipeline over the same journal. What recovery must do
// comes from the state table (states.ts): discard → rejected, reverse → rolled back,
// finish → committed; a record already closed is left as it is. The real engine's part of
// this is test/integration/crash-recovery.test.ts (a few points per driver step class).
import assert from 'node:assert/strict';
import { assertExcludes } from '../../support/assert.js';
import { recoveryFor, STATES } from '../../../agent/pipeline/states.js';
import { PipelineHarness } from '../../support/pipeline-harness.js';
import type { FakePackage } from '../../support/fake-packages.js';

type Mode = 'docker' | 'compose';
type Pkg = 'good' | 'broken' | 'broken_same_tag';

const UNTOUCHED = ['received', 'staged', 'validated', 'loading_image', 'image_loaded'];

/** The points a run saves, in order (checked against a clean run below, so they cannot go stale). */
const POINTS: Record<Mode, Partial<Record<Pkg, string[]>>> = {
  docker: {
    good: [
      ...UNTOUCHED,
      'switching',
      'switching.stop_old',
      'switching.park_old',
      'switching.create_new',
      'switching.start_new',
      'health_checking',
      'committing',
      'committing.remove_old',
      'closed:committed',
    ],
    broken: [
      ...UNTOUCHED,
      'switching',
      'switching.stop_old',
      'switching.park_old',
      'switching.create_new',
      'switching.start_new',
      'health_checking',
      'rolling_back',
      'rolling_back.remove_new',
      'rolling_back.unpark_old',
      'rolling_back.start_old',
      'closed:rolled_back',
    ],
  },
  compose: {
    good: [...UNTOUCHED, 'switching', 'switching.write_override', 'switching.compose_up', 'health_checking', 'committing', 'closed:committed'],
    broken: [
      ...UNTOUCHED,
      'switching',
      'switching.write_override',
      'switching.compose_up',
      'health_checking',
      'rolling_back',
      'rolling_back.restore_override',
      'rolling_back.compose_up',
      'closed:rolled_back',
    ],
    // the package reuses the previous version's tag: the rollback must put the tag back first
    broken_same_tag: [
      ...UNTOUCHED,
      'switching',
      'switching.write_override',
      'switching.compose_up',
      'health_checking',
      'rolling_back',
      'rolling_back.restore_override',
      'rolling_back.retag_previous',
      'rolling_back.compose_up',
      'closed:rolled_back',
    ],
  },
};

const SERVICE: Record<Mode, string> = { docker: 'web', compose: 'stack' };
const OLD_REF: Record<Mode, string> = { docker: 'acme/web:1.0.0', compose: 'acme/app:stable' };

interface Setup {
  h: PipelineHarness;
  pkg: FakePackage;
  oldContainerId: string;
  oldImageId: string;
}

function setup(mode: Mode, pkg: Pkg): Setup {
  const h = new PipelineHarness();
  const service = h.service(SERVICE[mode]);
  const old = mode === 'docker' ? h.engine.addContainer('web', OLD_REF.docker, { env: ['SECRET=hunter2'] }) : h.engine.addComposeService(service, OLD_REF.compose);
  const reference = pkg === 'broken_same_tag' ? OLD_REF.compose : mode === 'docker' ? 'acme/web:1.1.0' : 'acme/app:1.1.0';
  const p = h.package({
    service: service.name,
    revision: service.service_revision,
    version: '1.1.0',
    reference,
    behaviour: pkg === 'good' ? 'healthy' : 'exits',
  });
  return { h, pkg: p, oldContainerId: old.id, oldImageId: old.imageId };
}

/** The one container serving the service now. */
function serving(h: PipelineHarness, mode: Mode) {
  const all = [...h.engine.containers.values()];
  const mine = mode === 'docker' ? all.filter((c) => c.name === 'web' || c.name === 'web.caisson-prev') : all.filter((c) => c.compose?.project === 'stack');
  assert.equal(mine.map((c) => c.name).length, 1, 'exactly one container for the service');
  return mine[0]!;
}

describe('pipeline crash points (fake engine): kill after each saved state, then recover', function () {
  for (const mode of ['docker', 'compose'] as const) {
    for (const [pkgKind, points] of Object.entries(POINTS[mode]) as [Pkg, string[]][]) {
      it(`${mode} mode, ${pkgKind} package: a clean run saves exactly these points`, async () => {
        const { h, pkg } = setup(mode, pkgKind);
        try {
          const saved: string[] = [];
          const result = await h.pipeline((s) => saved.push(s)).run({ packagePath: pkg.path, source: 'cli' });
          assert.deepEqual(saved, points);
          assert.equal(result.outcome, pkgKind === 'good' ? 'committed' : 'rolled_back');
        } finally {
          h.close();
        }
      });

      for (const point of points) {
        const closedAs = point.startsWith('closed:') ? point.slice('closed:'.length) : undefined;
        const action = closedAs ? undefined : recoveryFor(point);
        const expected = closedAs ?? (action === 'discard' ? 'rejected' : action === 'reverse' ? 'rolled_back' : 'committed');
        it(`${mode} mode, ${pkgKind} package: killed after "${point}" → ${expected}`, async () => {
          const { h, pkg, oldContainerId, oldImageId } = setup(mode, pkgKind);
          try {
            await h.runUntilCrash(pkg, point);
            const open = h.journal.openRecords();
            assert.deepEqual(open.map((r) => r.state), closedAs ? [] : [point]);

            const recovered = await h.recover();
            assert.deepEqual(recovered.map((r) => r.outcome), closedAs ? [] : [expected]);

            const records = h.journal.list();
            assert.equal(records.length, 1);
            const record = records[0]!;
            assert.equal(record.closed, 1);
            assert.equal(record.outcome, expected);
            if (expected === 'committed') assert.equal(record.error_code, null);
            else if (pkgKind !== 'good' && (point.startsWith('rolling_back') || closedAs)) assert.equal(record.error_code, 'service.start_failed');
            else assert.equal(record.error_code, 'update.interrupted');

            // the service runs the old or the new version, in one running container
            const c = serving(h, mode);
            assert.equal(c.running, true, 'the service runs');
            if (expected === 'committed') {
              assert.equal(c.imageId, pkg.imageId);
              assert.equal(h.journal.installed(SERVICE[mode])?.package_version, '1.1.0');
            } else {
              assert.equal(c.imageId, oldImageId);
              if (mode === 'docker') assert.equal(c.id, oldContainerId, 'the old container itself serves again');
              assert.equal(h.journal.installed(SERVICE[mode]), undefined);
            }
            if (mode === 'docker') assert.equal(c.name, 'web');

            // tags: the package's tag only after a commit; a reused tag back on the old image
            if (pkgKind === 'broken_same_tag') assert.equal(h.engine.tagMap.get(OLD_REF.compose), oldImageId);
            else assert.equal(h.engine.tagMap.has(pkg.reference), expected === 'committed', `${pkg.reference} tagged`);

            assert.deepEqual(h.stagingLeft(), [], 'staging removed');
            assert.deepEqual(await h.recover(), [], 'a second recovery has nothing to do');
          } finally {
            h.close();
          }
        });
      }
    }
  }

  it('reaches every state of the table as a crash point in some mode', () => {
    const reached = new Set(Object.values(POINTS).flatMap((byPkg) => Object.values(byPkg).flat()).map((p) => p.split('.')[0]));
    assert.deepEqual(STATES.filter((s) => !reached.has(s)), []);
  });

  it('killed after closing "already installed": the staging copy left behind is removed on recovery', async () => {
    const { h, pkg } = setup('docker', 'good');
    try {
      assert.equal((await h.run(pkg)).outcome, 'committed');
      await h.runUntilCrash(pkg, 'closed:already_installed');
      assert.equal(h.stagingLeft().length, 1);
      assert.deepEqual(await h.recover(), []);
      assert.deepEqual(h.stagingLeft(), []);
      assert.deepEqual(h.journal.list().map((r) => r.outcome), ['already_installed', 'committed']);
    } finally {
      h.close();
    }
  });

  it('killed after closing a rejection: nothing to reverse, staging removed', async () => {
    const h = new PipelineHarness();
    try {
      h.engine.addContainer('web', OLD_REF.docker);
      const pkg = h.package({ service: 'web', revision: 'web-v0', version: '1.1.0', reference: 'acme/web:1.1.0' });
      await h.runUntilCrash(pkg, 'closed:rejected');
      assert.deepEqual(await h.recover(), []);
      assert.deepEqual(h.stagingLeft(), []);
      const [record] = h.journal.list();
      assert.equal(record!.error_code, 'manifest.revision_mismatch');
      assertExcludes(h.engine.calls, 'loadImage');
    } finally {
      h.close();
    }
  });
});
