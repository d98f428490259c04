// Every outcome of an update, on the fake engine: committed, already installed, rejected
// (before and after the import), rolled back, rollback failed (three ways), an engine that
// goes away mid-way and comes back, and records recovery cannot read.
import { expect } from 'chai';
import { CaissonError } from '../../../agent/errors.js';
import { PipelineHarness, codeOf } from '../../support/pipeline-harness.js';

const OLD = 'acme/web:1.0.0';
const NEW = 'acme/web:1.1.0';

describe('pipeline outcomes (fake engine)', function () {
  let h: PipelineHarness;
  beforeEach(() => {
    h = new PipelineHarness();
  });
  afterEach(() => h.close());

  const webPackage = (o: { version?: string; reference?: string; behaviour?: 'healthy' | 'exits'; revision?: string; repoTags?: string[] } = {}) =>
    h.package({ service: 'web', revision: o.revision ?? 'web-v1', version: o.version ?? '1.1.0', reference: o.reference ?? NEW, behaviour: o.behaviour, repoTags: o.repoTags });

  it('commits: new container under the name, parked one removed, installed row, history steps', async () => {
    const old = h.engine.addContainer('web', OLD, { env: ['TOKEN=s3cret'] });
    const pkg = webPackage();
    const result = await h.run(pkg);
    expect(result).to.deep.include({ outcome: 'committed', service: 'web', from_image: OLD, to_image: NEW, to_version: '1.1.0' });
    expect(result.error).to.equal(undefined);
    const now = h.engine.byName('web')!;
    expect(now.imageId).to.equal(pkg.imageId);
    expect(now.env, 'the configuration is carried over').to.deep.equal(['TOKEN=s3cret']);
    expect(h.engine.containers.has(old.id)).to.equal(false);
    expect(h.engine.byName('web.caisson-prev')).to.equal(undefined);
    expect(h.journal.installed('web')).to.deep.include({ package_version: '1.1.0', image_ref: NEW, highest_version: '1.1.0' });
    expect(result.steps.map((s) => s.state)).to.deep.equal([
      'received', 'received', 'staged', 'staged', 'validated', 'loading_image', 'loading_image', 'image_loaded', 'image_loaded', 'switching',
      'switching.stop_old', 'switching.park_old', 'switching.create_new', 'switching.start_new', 'health_checking', 'committing',
      'committing.remove_old', 'closed:committed',
    ]);
    // container environment values never reach the state database
    expect(JSON.stringify(h.db.prepare('SELECT data FROM updates').all())).to.not.include('s3cret');
    expect(h.stagingLeft()).to.deep.equal([]);
  });

  it('says already_installed for the same package again and touches nothing', async () => {
    h.engine.addContainer('web', OLD);
    const pkg = webPackage();
    await h.run(pkg);
    const serving = h.engine.byName('web')!;
    const calls = h.engine.calls.length;
    const again = await h.run(pkg);
    expect(again.outcome).to.equal('already_installed');
    expect(h.engine.byName('web')).to.equal(serving);
    expect(h.engine.calls.slice(calls).filter((c) => c !== 'dataRoot')).to.deep.equal([]);
  });

  it('rejects a package for another service revision before the engine is touched', async () => {
    h.engine.addContainer('web', OLD);
    const result = await h.run(webPackage({ revision: 'web-v0' }));
    expect(result.outcome).to.equal('rejected');
    expect(result.error?.code).to.equal('manifest.revision_mismatch');
    expect(h.engine.calls.filter((c) => c !== 'dataRoot')).to.deep.equal([]);
  });

  it('rejects an image that does not carry its reference, and removes the tag the import added', async () => {
    h.engine.addContainer('web', OLD);
    const result = await h.run(webPackage({ repoTags: ['acme/other:9'] }));
    expect(result.outcome).to.equal('rejected');
    expect(result.error?.code).to.equal('image.reference_mismatch');
    expect([...h.engine.tagMap.keys()]).to.deep.equal([OLD]);
    expect(h.engine.byName('web')!.ref).to.equal(OLD);
  });

  it('rejects when the engine refuses the image', async () => {
    h.engine.addContainer('web', OLD);
    h.engine.failOn('loadImage', new CaissonError('docker.load_failed', 'bad layer'));
    const result = await h.run(webPackage());
    expect(result).to.deep.include({ outcome: 'rejected' });
    expect(result.error?.code).to.equal('docker.load_failed');
  });

  it('rejects with update.cancelled when the operator says no, after validation and before the import', async () => {
    h.engine.addContainer('web', OLD);
    let asked: unknown;
    const result = await h.run(webPackage(), { confirm: async (s) => ((asked = s), false) });
    expect(asked).to.deep.equal({ service: 'web', from: OLD, to: NEW, version: '1.1.0' });
    expect(result.error?.code).to.equal('update.cancelled');
    expect(h.engine.calls).to.not.include('loadImage');
  });

  it('rolls back a version that exits at once: the old container serves again, the new tag is gone', async () => {
    const old = h.engine.addContainer('web', OLD);
    const result = await h.run(webPackage({ behaviour: 'exits' }));
    expect(result.outcome).to.equal('rolled_back');
    expect(result.error?.code).to.equal('service.start_failed');
    expect(h.engine.byName('web')).to.include({ id: old.id, running: true });
    expect([...h.engine.containers.keys()]).to.deep.equal([old.id]);
    expect(h.engine.tagMap.has(NEW)).to.equal(false);
    expect(h.journal.installed('web')).to.equal(undefined);
  });

  it('rolls back and starts the previous version even when it was not running before the update', async () => {
    const old = h.engine.addContainer('web', OLD, { running: false });
    const result = await h.run(webPackage({ behaviour: 'exits' }));
    expect(result.outcome).to.equal('rolled_back');
    expect(h.engine.byName('web')).to.include({ id: old.id, running: true });
  });

  it('reports rollback_failed when the previous container is gone (no retries)', async () => {
    const old = h.engine.addContainer('web', OLD);
    const pipeline = h.pipeline((state) => {
      if (state === 'rolling_back') h.engine.containers.delete(old.id);
    });
    const result = await pipeline.run({ packagePath: webPackage({ behaviour: 'exits' }).path, source: 'cli' });
    expect(result.outcome).to.equal('rollback_failed');
    expect(result.error?.code).to.equal('rollback.failed');
    expect(result.error?.message).to.match(/^rollback failed after service\.start_failed: .*no longer exists/);
    expect(h.engine.calls.filter((c) => c === 'rollback')).to.have.length(1);
    expect(h.journal.openRecords()).to.deep.equal([]);
  });

  it('reports rollback_failed after the bounded restore attempts when the engine keeps failing', async () => {
    h.engine.addContainer('web', OLD);
    h.engine.failOn('rollback', new CaissonError('docker.error', 'failed to update store for object type *libnetwork.endpoint'), Infinity);
    const result = await h.run(webPackage({ behaviour: 'exits' }));
    expect(result.outcome).to.equal('rollback_failed');
    expect(h.engine.calls.filter((c) => c === 'rollback')).to.have.length(3); // FAST_TIMING.restoreAttempts
  });

  it('leaves the new version in place with rollback_failed when automatic rollback is off', async () => {
    h.engine.addContainer('manual', 'acme/manual:1.0.0');
    const pkg = h.package({ service: 'manual', revision: 'manual-v1', version: '1.1.0', reference: 'acme/manual:1.1.0', behaviour: 'exits' });
    const result = await h.run(pkg);
    expect(result.outcome).to.equal('rollback_failed');
    expect(result.error?.next).to.match(/Automatic rollback is off for manual/);
    expect(h.engine.byName('manual')!.imageId).to.equal(pkg.imageId);
    expect(h.engine.byName('manual.caisson-prev'), 'the previous container is kept').to.not.equal(undefined);
  });

  it('imports again when the engine goes away during the upload and comes back', async () => {
    h.engine.addContainer('web', OLD);
    h.engine.failOn('loadImage', new CaissonError('docker.unreachable', 'connection reset'));
    const result = await h.run(webPackage());
    expect(result.outcome).to.equal('committed');
    expect(h.engine.calls.filter((c) => c === 'loadImage')).to.have.length(2);
  });

  it('finishes the commit when the engine goes away during it and comes back', async () => {
    h.engine.addContainer('web', OLD);
    const pipeline = h.pipeline((state) => {
      if (state === 'committing') h.engine.gone(1);
    });
    const result = await pipeline.run({ packagePath: webPackage().path, source: 'cli' });
    expect(result.outcome).to.equal('committed');
    expect(h.engine.byName('web.caisson-prev')).to.equal(undefined);
  });

  it('keeps the record open when the engine stays away during a rollback; recovery finishes it once it is back', async () => {
    const old = h.engine.addContainer('web', OLD);
    const pipeline = h.pipeline((state) => {
      if (state === 'rolling_back') h.engine.gone();
    });
    const result = await pipeline.run({ packagePath: webPackage({ behaviour: 'exits' }).path, source: 'cli' });
    expect(result.outcome).to.equal('rollback_failed');
    expect(h.journal.openRecords().map((r) => r.state)).to.deep.equal(['rolling_back']);

    h.engine.back();
    const recovered = await h.recover();
    expect(recovered.map((r) => [r.outcome, r.error?.code])).to.deep.equal([['rolled_back', 'service.start_failed']]);
    expect(h.engine.byName('web')).to.include({ id: old.id, running: true });
    expect(h.engine.tagMap.has(NEW)).to.equal(false);
  });

  it('never closes a record in a state it does not know: recovery fails, says which, and keeps it open', async () => {
    h.engine.addContainer('web', OLD);
    const known = await h.run(webPackage({ behaviour: 'exits' }));
    const id = h.journal.begin({ kind: 'update', source: 'usb', packageFile: '/stick/x.edgepkg' });
    h.journal.transition(id, 'switching.teleport_old');
    h.db.prepare("UPDATE updates SET state = 'quantum_leap' WHERE id = ?").run(id);
    const err = await h.recover().catch((e: unknown) => e);
    expect(codeOf(err)).to.equal('internal.error');
    expect((err as Error).message).to.include(`${id} (state "quantum_leap")`);
    expect(h.journal.openRecords().map((r) => r.id)).to.deep.equal([id]);
    expect(h.journal.get(known.update_id)!.outcome).to.equal('rolled_back');
  });

  it('keeps a record with journal data from a newer Caisson open, and recovers the others', async () => {
    h.engine.addContainer('web', OLD);
    await h.runUntilCrash(webPackage(), 'switching.park_old');
    const newer = h.journal.begin({ kind: 'update', source: 'cli', packageFile: '/x.edgepkg' });
    h.journal.transition(newer, 'health_checking');
    h.db.prepare('UPDATE updates SET data = ? WHERE id = ?').run(JSON.stringify({ v: 99, plan: {} }), newer);
    const err = await h.recover().catch((e: unknown) => e);
    expect((err as Error).message).to.match(/journal data version 99/);
    expect(h.journal.openRecords().map((r) => r.id)).to.deep.equal([newer]);
    expect(h.engine.byName('web')!.ref, 'the other record was rolled back').to.equal(OLD);
  });

  it('recovers a record a version-1 journal left mid-switch (plan details under `details`)', async () => {
    const old = h.engine.addContainer('web', OLD);
    await h.runUntilCrash(webPackage(), 'switching.create_new');
    const row = h.journal.openRecords()[0]!;
    const data = JSON.parse(row.data) as { plan: Record<string, unknown> };
    const { mode, service, newImageRef, previous, ...details } = data.plan;
    const v1 = { ...data, v: 1, plan: { mode, service, newImageRef, previous, details } };
    h.db.prepare('UPDATE updates SET data = ? WHERE id = ?').run(JSON.stringify(v1), row.id);
    const recovered = await h.recover();
    expect(recovered.map((r) => r.outcome)).to.deep.equal(['rolled_back']);
    expect(h.engine.byName('web')).to.include({ id: old.id, running: true });
  });
});
