// Stack updates on the fake engine: one package, three services (two docker-mode, one
// compose-mode next to an untouched sidecar of its project), all or nothing. Every crash
// point is in stack-crash-points.test.ts.
import assert from 'node:assert/strict';
import { assertExcludes, assertFields, assertIncludes } from '../../support/assert.js';
import { CaissonError } from '../../../agent/errors.js';
import { PipelineHarness, STACK_SERVICES_TOML } from '../../support/pipeline-harness.js';
import type { FakeStackImage } from '../../support/fake-packages.js';
import { stackSetup, type StackSetup } from '../../support/stack-fixture.js';

describe('stack updates (fake engine)', function () {
  let s: StackSetup;
  let h: PipelineHarness;
  beforeEach(() => {
    s = stackSetup(new PipelineHarness(STACK_SERVICES_TOML));
    h = s.h;
  });
  afterEach(() => h.close());

  it('commits: every service on its new image, in the manifest order, one history record with each service', async () => {
    const pkg = s.pkg();
    const saved: string[] = [];
    const result = await h.pipeline((p) => saved.push(p)).run({ packagePath: pkg.path, source: 'cli' });
    assert.equal(result.outcome, 'committed');
    assert.equal(result.error, undefined);
    s.expectNew(pkg);
    assertFields(result, { stack: 'shop', package_version: '2.1.0' });
    assert.deepEqual(result.services, (['api', 'front', 'worker'] as const).map((name) => ({ service: name, state: 'committed', to_version: '2.1.0', from_image: `acme/${name}:2.0.0`, to_image: `acme/${name}:2.1.0` })));
    // in order: each switched and passing before the next, then all together, then commit
    const order = saved.filter((p) => /^(switching|health_checking|committing)(\.[a-z]+)?$/.test(p));
    assert.deepEqual(order, [
      'switching.api', 'health_checking.api',
      'switching.front', 'health_checking.front',
      'switching.worker', 'health_checking.worker',
      'health_checking', 'committing',
    ]);
    for (const name of ['api', 'front', 'worker']) {
      assertFields(h.journal.installed(name), { package_version: '2.1.0', stack: 'shop', stack_version: '2.1.0', highest_version: '2.1.0' });
    }
    assert.equal(h.journal.list().length, 1);
    assert.equal(h.journal.lastUpdateFor('front')?.id, result.update_id);
    assert.deepEqual(h.journal.list({ service: 'worker' }).map((r) => r.id), [result.update_id]);
    assert.deepEqual(h.stagingLeft(), []);
    // no container environment in the journal
    assertExcludes(JSON.stringify(h.db.prepare('SELECT data FROM updates').all()), 's3cret');
  });

  it('the same stack again is already installed and touches nothing; a service package later clears the stack column', async () => {
    const pkg = s.pkg();
    assert.equal((await h.run(pkg)).outcome, 'committed');
    const calls = h.engine.calls.length;
    const again = await h.run(pkg);
    assert.equal(again.outcome, 'already_installed');
    assert.deepEqual(h.engine.calls.slice(calls).filter((c) => c !== 'dataRoot'), []);

    const single = h.package({ service: 'api', revision: 'api-v1', version: '2.2.0', reference: 'acme/api:2.2.0' });
    assert.equal((await h.run(single)).outcome, 'committed');
    assertFields(h.journal.installed('api'), { package_version: '2.2.0', stack: null, stack_version: null });
    assertFields(h.journal.installed('worker'), { stack: 'shop' });
  });

  it('a health failure of the third service rolls back all three in reverse order, each healthy again; the sidecar is untouched', async () => {
    const pkg = s.pkg({ worker: { behaviour: 'exits' } });
    const saved: string[] = [];
    const result = await h.pipeline((p) => saved.push(p)).run({ packagePath: pkg.path, source: 'cli' });
    assert.equal(result.outcome, 'rolled_back');
    assert.equal(result.error?.code, 'service.start_failed');
    s.expectOld();
    assert.deepEqual(saved.filter((p) => /^rolling_back\.[a-z]+$/.test(p)), ['rolling_back.worker', 'rolling_back.front', 'rolling_back.api']);
    assert.deepEqual(result.services?.map((m) => m.state), ['restored', 'restored', 'restored']);
    for (const name of ['api', 'front', 'worker']) assert.equal(h.journal.installed(name), undefined);
    for (const ref of pkg.images.map((i) => i.reference)) assert.equal(h.engine.tagMap.has(ref), false, `${ref} untagged`);
  });

  it('a first service that passes and then dies before the stable window together rolls back everything', async () => {
    const pkg = s.pkg();
    const start = h.engine.start.bind(h.engine);
    h.engine.start = (c) => {
      start(c);
      // api passed its probe; its new container dies while worker starts
      if (c.name === 'worker' && c.imageId === pkg.images[2]!.imageId) h.engine.byName('api')!.running = false;
    };
    const result = await h.run(pkg);
    assert.equal(result.outcome, 'rolled_back');
    assertIncludes(['health.unstable', 'service.start_failed'], result.error?.code);
    h.engine.start = start;
    s.expectOld();
  });

  it('a corrupt second image is rejected with nothing stopped, and the first image it brought is untagged', async () => {
    const pkg = s.pkg({ front: { broken: true } });
    const result = await h.run(pkg);
    assert.equal(result.outcome, 'rejected');
    assert.equal(result.error?.code, 'docker.load_failed');
    s.expectOld();
    assertExcludes(h.engine.calls, 'switchTo');
    assert.equal(h.engine.tagMap.has('acme/api:2.1.0'), false, 'the first image of the archive was untagged');
    assert.deepEqual(result.services?.map((m) => m.state), ['pending', 'pending', 'pending']);
  });

  it('asks the operator once for the whole stack; a no cancels before the import', async () => {
    const asked: unknown[] = [];
    const result = await h.run(s.pkg(), {
      confirm: async (q) => {
        asked.push(q);
        return false;
      },
    });
    assert.equal(result.outcome, 'rejected');
    assert.equal(result.error?.code, 'update.cancelled');
    assert.deepEqual(asked, [
      {
        service: 'stack shop',
        from: 'api acme/api:2.0.0, front acme/front:2.0.0, worker acme/worker:2.0.0',
        to: 'api acme/api:2.1.0, front acme/front:2.1.0, worker acme/worker:2.1.0',
        version: '2.1.0',
      },
    ]);
    assertExcludes(h.engine.calls, 'loadImage');
    s.expectOld();
  });

  it('a second image missing from the archive is rejected before anything stops', async () => {
    const result = await h.run(s.pkg({ front: { missing: true } }));
    assert.equal(result.outcome, 'rejected');
    assert.match(result.error?.code ?? '', /^(image\.|manifest\.)/);
    s.expectOld();
    assertExcludes(h.engine.calls, 'switchTo');
  });

  it('a service whose container is missing stops the stack before anything is switched', async () => {
    h.engine.containers.delete(h.engine.byName('worker')!.id);
    const result = await h.run(s.pkg());
    assert.equal(result.outcome, 'rejected');
    assert.equal(result.error?.code, 'service.not_found');
    assertExcludes(h.engine.calls, 'switchTo');
    assert.equal(h.engine.byName('api')!.imageId, s.old.api.imageId);
  });

  it('refuses a service named twice, or one not in the catalog, before anything changes', async () => {
    for (const services of [
      [s.image('api'), s.image('api', { reference: 'acme/api:2.1.1' })],
      [s.image('api'), { service: 'ghost', revision: 'ghost-v1', version: '2.1.0', reference: 'acme/ghost:2.1.0' }],
    ] as FakeStackImage[][]) {
      const result = await h.run(h.stackPackage({ name: 'shop', version: '2.1.0', services }));
      assert.equal(result.outcome, 'rejected');
      assert.match(result.error?.code ?? '', /^manifest\./);
    }
    assert.deepEqual(h.engine.calls.filter((c) => c !== 'dataRoot'), []);
  });

  it('applies the downgrade policy to each service', async () => {
    assert.equal((await h.run(h.package({ service: 'front', revision: 'front-v1', version: '3.0.0', reference: 'acme/front:3.0.0' }))).outcome, 'committed');
    const calls = h.engine.calls.length;
    const result = await h.run(s.pkg());
    assert.equal(result.outcome, 'rejected');
    assert.equal(result.error?.code, 'policy.downgrade');
    assertIncludes(result.error?.message, 'front');
    assert.deepEqual(h.engine.calls.slice(calls).filter((c) => c !== 'dataRoot'), []);
  });

  it('rolls back every service even when one of them has automatic rollback off (a stack is all or nothing)', async () => {
    h.engine.addContainer('manual', 'acme/manual:1.0.0');
    const pkg = h.stackPackage({
      name: 'shop',
      version: '2.1.0',
      services: [s.image('api'), { service: 'manual', revision: 'manual-v1', version: '2.1.0', reference: 'acme/manual:2.1.0', behaviour: 'exits' }],
    });
    const result = await h.run(pkg);
    assert.equal(result.outcome, 'rolled_back');
    assert.equal(h.engine.byName('manual')!.ref, 'acme/manual:1.0.0');
    assert.equal(h.engine.byName('manual')!.running, true);
    assert.equal(h.engine.byName('api')!.imageId, s.old.api.imageId);
  });

  it('an engine that goes away mid-switch and comes back within the wait: rolled back whole', async () => {
    const pkg = s.pkg();
    const start = h.engine.start.bind(h.engine);
    let once = false;
    h.engine.start = (c) => {
      start(c);
      if (c.name === 'worker' && !once) {
        once = true;
        h.engine.gone(2);
      }
    };
    const result = await h.run(pkg);
    assert.equal(result.outcome, 'rolled_back');
    assert.equal(result.error?.code, 'docker.unreachable');
    s.expectOld();
  });

  it('an engine that stays away: the record stays open, and recovery rolls back the whole stack once it is back', async () => {
    const pkg = s.pkg();
    const start = h.engine.start.bind(h.engine);
    h.engine.start = (c) => {
      start(c);
      if (c.name === 'worker') h.engine.gone();
    };
    const result = await h.run(pkg);
    assert.equal(result.outcome, 'rollback_failed');
    assert.equal(result.error?.code, 'docker.unreachable');
    assert.equal(h.journal.openRecords().length, 1);
    h.engine.start = start;
    h.engine.back();
    const recovered = await h.recover();
    assert.deepEqual(recovered.map((r) => r.outcome), ['rolled_back']);
    s.expectOld();
  });

  it('a service that cannot be restored does not stop the others; the outcome names it', async () => {
    const pkg = s.pkg({ worker: { behaviour: 'exits' } });
    const driverFor = h.engine.driverFor.bind(h.engine);
    let attempts = 0;
    h.engine.driverFor = (service) => {
      const d = driverFor(service);
      if (service.name !== 'front') return d;
      return Object.assign(Object.create(d) as typeof d, {
        rollback: async () => {
          attempts++;
          throw new CaissonError('rollback.failed', 'the previous front image is gone');
        },
        previousGone: async () => true,
      });
    };
    const result = await h.run(pkg);
    assert.equal(result.outcome, 'rollback_failed');
    assertIncludes(result.error?.message, 'front');
    assert.equal(attempts, 1);
    assert.equal(h.engine.byName('api')!.imageId, s.old.api.imageId);
    assert.equal(h.engine.byName('worker')!.imageId, s.old.worker.imageId);
    assert.deepEqual(result.services?.map((m) => m.state), ['restored', 'healthy', 'restored'], 'front stays where it failed');
  });
});
