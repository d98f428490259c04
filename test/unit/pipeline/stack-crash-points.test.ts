// Every crash point of a stack update (three services: api and worker in docker mode,
// front in compose mode between them), on the fake engine: killed right after the journal
// saved the point, then recovery in a fresh pipeline. Whatever the point, the stack ends
// whole on one side: every service new and committed, or every service old, running and
// the stack not installed. Never half. The real engine's part: test/integration/stack.test.ts.
import assert from 'node:assert/strict';
import { assertFields, assertIncludes } from '../../support/assert.js';
import { recoveryFor } from '../../../agent/pipeline/states.js';
import { PipelineHarness, STACK_SERVICES_TOML } from '../../support/pipeline-harness.js';
import { stackSetup, STACK_ORDER, type StackSetup } from '../../support/stack-fixture.js';
import type { FakeStackPackage } from '../../support/fake-packages.js';

type Kind = 'good' | 'third_fails';

const UNTOUCHED = ['received', 'staged', 'validated', 'loading_image', 'image_loaded'];
const DOCKER_SWITCH = ['stop_old', 'park_old', 'create_new', 'start_new'];
const COMPOSE_SWITCH = ['write_override', 'compose_up'];
const switchOf = (svc: string, steps: string[]) => [`switching.${svc}`, ...steps.map((s) => `switching.${svc}.${s}`), `health_checking.${svc}`];

/** The points a run saves, in order (checked against a clean run, so they cannot go stale). */
const POINTS: Record<Kind, string[]> = {
  good: [
    ...UNTOUCHED,
    ...switchOf('api', DOCKER_SWITCH),
    ...switchOf('front', COMPOSE_SWITCH),
    ...switchOf('worker', DOCKER_SWITCH),
    'health_checking',
    'committing',
    'committing.api.remove_old',
    'committing.worker.remove_old',
    'closed:committed',
  ],
  third_fails: [
    ...UNTOUCHED,
    ...switchOf('api', DOCKER_SWITCH),
    ...switchOf('front', COMPOSE_SWITCH),
    ...switchOf('worker', DOCKER_SWITCH),
    'rolling_back',
    'rolling_back.worker',
    'rolling_back.worker.remove_new',
    'rolling_back.worker.unpark_old',
    'rolling_back.worker.start_old',
    'rolling_back.front',
    'rolling_back.front.restore_override',
    'rolling_back.front.compose_up',
    'rolling_back.api',
    'rolling_back.api.remove_new',
    'rolling_back.api.unpark_old',
    'rolling_back.api.start_old',
    'closed:rolled_back',
  ],
};

function setup(kind: Kind): { s: StackSetup; pkg: FakeStackPackage } {
  const s = stackSetup(new PipelineHarness(STACK_SERVICES_TOML));
  return { s, pkg: s.pkg(kind === 'third_fails' ? { worker: { behaviour: 'exits' } } : {}) };
}

describe('stack crash points (fake engine): kill after each saved state of a three-service stack, then recover', function () {
  for (const [kind, points] of Object.entries(POINTS) as [Kind, string[]][]) {
    it(`${kind}: a clean run saves exactly these points`, async () => {
      const { s, pkg } = setup(kind);
      try {
        const saved: string[] = [];
        const result = await s.h.pipeline((p) => saved.push(p)).run({ packagePath: pkg.path, source: 'cli' });
        assert.deepEqual(saved, points);
        assert.equal(result.outcome, kind === 'good' ? 'committed' : 'rolled_back');
      } finally {
        s.h.close();
      }
    });

    for (const point of points) {
      const closedAs = point.startsWith('closed:') ? point.slice('closed:'.length) : undefined;
      const action = closedAs ? undefined : recoveryFor(point);
      const expected = closedAs ?? (action === 'discard' ? 'rejected' : action === 'reverse' ? 'rolled_back' : 'committed');
      it(`${kind}: killed after "${point}" → ${expected}, the whole stack on one side`, async () => {
        const { s, pkg } = setup(kind);
        const { h } = s;
        try {
          await h.runUntilCrash(pkg, point);
          assert.deepEqual(h.journal.openRecords().map((r) => r.state), closedAs ? [] : [point]);

          const recovered = await h.recover();
          assert.deepEqual(recovered.map((r) => r.outcome), closedAs ? [] : [expected]);
          const records = h.journal.list();
          assert.equal(records.length, 1);
          assertFields(records[0], { closed: 1, outcome: expected });
          if (!['received', 'staged'].includes(point)) assert.equal(records[0]!.stack, 'shop', 'the record names its stack from the manifest on');
          if (expected === 'committed') assert.equal(records[0]!.error_code, null);
          else if (kind === 'third_fails' && (point.startsWith('rolling_back') || closedAs)) assert.equal(records[0]!.error_code, 'service.start_failed');
          else assert.equal(records[0]!.error_code, 'update.interrupted');

          if (expected === 'committed') {
            s.expectNew(pkg);
            for (const name of STACK_ORDER) assertFields(h.journal.installed(name), { package_version: '2.1.0', stack: 'shop' }, name);
            assert.deepEqual(h.journal.toResult(records[0]!.id).services?.map((m) => m.state), ['committed', 'committed', 'committed']);
          } else {
            s.expectOld();
            for (const name of STACK_ORDER) assert.equal(h.journal.installed(name), undefined, name);
            for (const ref of pkg.images.map((i) => i.reference)) assert.equal(h.engine.tagMap.has(ref), false, `${ref} tagged`);
          }
          assert.deepEqual(h.stagingLeft(), [], 'staging removed');
          assert.deepEqual(await h.recover(), [], 'a second recovery has nothing to do');
        } finally {
          h.close();
        }
      });
    }
  }

  it('killed during recovery itself (after it restored one service): the next recovery finishes the rest', async () => {
    const { s, pkg } = setup('good');
    const { h } = s;
    try {
      await h.runUntilCrash(pkg, 'health_checking');
      // the first recovery is killed after it put worker back and started on front
      const saved: string[] = [];
      const crashing = h.pipeline((p) => {
        saved.push(p);
        if (p === 'rolling_back.front') {
          h.db.close();
          h.engine.gone();
          throw new Error('killed');
        }
      });
      const { recoverOpenUpdates } = await import('../../../agent/pipeline/recover.js');
      const { Journal } = await import('../../../agent/store/journal.js');
      await recoverOpenUpdates(crashing, new Journal(h.db), h.catalog, h.stateDir).catch(() => undefined);
      assertIncludes(saved, 'rolling_back.worker.start_old');
      h.engine.back();
      const { openDatabase } = await import('../../../agent/store/db.js');
      h.db = openDatabase(h.stateDir);
      const recovered = await h.recover();
      assert.deepEqual(recovered.map((r) => r.outcome), ['rolled_back']);
      s.expectOld();
    } finally {
      h.close();
    }
  });
});
