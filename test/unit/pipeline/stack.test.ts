// Stack updates on the fake engine: one package, three services (two docker-mode, one
// compose-mode next to an untouched sidecar of its project), all or nothing. Every crash
// point is in stack-crash-points.test.ts.
import { expect } from 'chai';
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
    expect(result.outcome).to.equal('committed');
    expect(result.error).to.equal(undefined);
    s.expectNew(pkg);
    expect(result).to.deep.include({ stack: 'shop', package_version: '2.1.0' });
    expect(result.services).to.deep.equal(
      (['api', 'front', 'worker'] as const).map((name) => ({ service: name, state: 'committed', to_version: '2.1.0', from_image: `acme/${name}:2.0.0`, to_image: `acme/${name}:2.1.0` })),
    );
    // in order: each switched and passing before the next, then all together, then commit
    const order = saved.filter((p) => /^(switching|health_checking|committing)(\.[a-z]+)?$/.test(p));
    expect(order).to.deep.equal([
      'switching.api', 'health_checking.api',
      'switching.front', 'health_checking.front',
      'switching.worker', 'health_checking.worker',
      'health_checking', 'committing',
    ]);
    for (const name of ['api', 'front', 'worker']) {
      expect(h.journal.installed(name)).to.deep.include({ package_version: '2.1.0', stack: 'shop', stack_version: '2.1.0', highest_version: '2.1.0' });
    }
    expect(h.journal.list()).to.have.length(1);
    expect(h.journal.lastUpdateFor('front')?.id).to.equal(result.update_id);
    expect(h.journal.list({ service: 'worker' }).map((r) => r.id)).to.deep.equal([result.update_id]);
    expect(h.stagingLeft()).to.deep.equal([]);
    // no container environment in the journal
    expect(JSON.stringify(h.db.prepare('SELECT data FROM updates').all())).to.not.include('s3cret');
  });

  it('the same stack again is already installed and touches nothing; a service package later clears the stack column', async () => {
    const pkg = s.pkg();
    expect((await h.run(pkg)).outcome).to.equal('committed');
    const calls = h.engine.calls.length;
    const again = await h.run(pkg);
    expect(again.outcome).to.equal('already_installed');
    expect(h.engine.calls.slice(calls).filter((c) => c !== 'dataRoot')).to.deep.equal([]);

    const single = h.package({ service: 'api', revision: 'api-v1', version: '2.2.0', reference: 'acme/api:2.2.0' });
    expect((await h.run(single)).outcome).to.equal('committed');
    expect(h.journal.installed('api')).to.deep.include({ package_version: '2.2.0', stack: null, stack_version: null });
    expect(h.journal.installed('worker')).to.deep.include({ stack: 'shop' });
  });

  it('a health failure of the third service rolls back all three in reverse order, each healthy again; the sidecar is untouched', async () => {
    const pkg = s.pkg({ worker: { behaviour: 'exits' } });
    const saved: string[] = [];
    const result = await h.pipeline((p) => saved.push(p)).run({ packagePath: pkg.path, source: 'cli' });
    expect(result.outcome).to.equal('rolled_back');
    expect(result.error?.code).to.equal('service.start_failed');
    s.expectOld();
    expect(saved.filter((p) => /^rolling_back\.[a-z]+$/.test(p))).to.deep.equal(['rolling_back.worker', 'rolling_back.front', 'rolling_back.api']);
    expect(result.services?.map((m) => m.state)).to.deep.equal(['restored', 'restored', 'restored']);
    for (const name of ['api', 'front', 'worker']) expect(h.journal.installed(name)).to.equal(undefined);
    for (const ref of pkg.images.map((i) => i.reference)) expect(h.engine.tagMap.has(ref), `${ref} untagged`).to.equal(false);
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
    expect(result.outcome).to.equal('rolled_back');
    expect(result.error?.code).to.be.oneOf(['health.unstable', 'service.start_failed']);
    h.engine.start = start;
    s.expectOld();
  });

  it('a corrupt second image is rejected with nothing stopped, and the first image it brought is untagged', async () => {
    const pkg = s.pkg({ front: { broken: true } });
    const result = await h.run(pkg);
    expect(result.outcome).to.equal('rejected');
    expect(result.error?.code).to.equal('docker.load_failed');
    s.expectOld();
    expect(h.engine.calls).to.not.include('switchTo');
    expect(h.engine.tagMap.has('acme/api:2.1.0'), 'the first image of the archive was untagged').to.equal(false);
    expect(result.services?.map((m) => m.state)).to.deep.equal(['pending', 'pending', 'pending']);
  });

  it('asks the operator once for the whole stack; a no cancels before the import', async () => {
    const asked: unknown[] = [];
    const result = await h.run(s.pkg(), {
      confirm: async (q) => {
        asked.push(q);
        return false;
      },
    });
    expect(result.outcome).to.equal('rejected');
    expect(result.error?.code).to.equal('update.cancelled');
    expect(asked).to.deep.equal([
      {
        service: 'stack shop',
        from: 'api acme/api:2.0.0, front acme/front:2.0.0, worker acme/worker:2.0.0',
        to: 'api acme/api:2.1.0, front acme/front:2.1.0, worker acme/worker:2.1.0',
        version: '2.1.0',
      },
    ]);
    expect(h.engine.calls).to.not.include('loadImage');
    s.expectOld();
  });

  it('a second image missing from the archive is rejected before anything stops', async () => {
    const result = await h.run(s.pkg({ front: { missing: true } }));
    expect(result.outcome).to.equal('rejected');
    expect(result.error?.code).to.match(/^(image\.|manifest\.)/);
    s.expectOld();
    expect(h.engine.calls).to.not.include('switchTo');
  });

  it('a service whose container is missing stops the stack before anything is switched', async () => {
    h.engine.containers.delete(h.engine.byName('worker')!.id);
    const result = await h.run(s.pkg());
    expect(result.outcome).to.equal('rejected');
    expect(result.error?.code).to.equal('service.not_found');
    expect(h.engine.calls).to.not.include('switchTo');
    expect(h.engine.byName('api')!.imageId).to.equal(s.old.api.imageId);
  });

  it('refuses a service named twice, or one not in the catalog, before anything changes', async () => {
    for (const services of [
      [s.image('api'), s.image('api', { reference: 'acme/api:2.1.1' })],
      [s.image('api'), { service: 'ghost', revision: 'ghost-v1', version: '2.1.0', reference: 'acme/ghost:2.1.0' }],
    ] as FakeStackImage[][]) {
      const result = await h.run(h.stackPackage({ name: 'shop', version: '2.1.0', services }));
      expect(result.outcome).to.equal('rejected');
      expect(result.error?.code).to.match(/^manifest\./);
    }
    expect(h.engine.calls.filter((c) => c !== 'dataRoot')).to.deep.equal([]);
  });

  it('applies the downgrade policy to each service', async () => {
    expect((await h.run(h.package({ service: 'front', revision: 'front-v1', version: '3.0.0', reference: 'acme/front:3.0.0' }))).outcome).to.equal('committed');
    const calls = h.engine.calls.length;
    const result = await h.run(s.pkg());
    expect(result.outcome).to.equal('rejected');
    expect(result.error?.code).to.equal('policy.downgrade');
    expect(result.error?.message).to.include('front');
    expect(h.engine.calls.slice(calls).filter((c) => c !== 'dataRoot')).to.deep.equal([]);
  });

  it('rolls back every service even when one of them has automatic rollback off (a stack is all or nothing)', async () => {
    h.engine.addContainer('manual', 'acme/manual:1.0.0');
    const pkg = h.stackPackage({
      name: 'shop',
      version: '2.1.0',
      services: [s.image('api'), { service: 'manual', revision: 'manual-v1', version: '2.1.0', reference: 'acme/manual:2.1.0', behaviour: 'exits' }],
    });
    const result = await h.run(pkg);
    expect(result.outcome).to.equal('rolled_back');
    expect(h.engine.byName('manual')!.ref).to.equal('acme/manual:1.0.0');
    expect(h.engine.byName('manual')!.running).to.equal(true);
    expect(h.engine.byName('api')!.imageId).to.equal(s.old.api.imageId);
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
    expect(result.outcome).to.equal('rolled_back');
    expect(result.error?.code).to.equal('docker.unreachable');
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
    expect(result.outcome).to.equal('rollback_failed');
    expect(result.error?.code).to.equal('docker.unreachable');
    expect(h.journal.openRecords()).to.have.length(1);
    h.engine.start = start;
    h.engine.back();
    const recovered = await h.recover();
    expect(recovered.map((r) => r.outcome)).to.deep.equal(['rolled_back']);
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
    expect(result.outcome).to.equal('rollback_failed');
    expect(result.error?.message).to.include('front');
    expect(attempts).to.equal(1);
    expect(h.engine.byName('api')!.imageId).to.equal(s.old.api.imageId);
    expect(h.engine.byName('worker')!.imageId).to.equal(s.old.worker.imageId);
    expect(result.services?.map((m) => m.state), 'front stays where it failed').to.deep.equal(['restored', 'healthy', 'restored']);
  });
});
