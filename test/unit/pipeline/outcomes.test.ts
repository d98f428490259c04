// Every outcome of an update, on the fake engine: committed, already installed, rejected
// (before and after the import), rolled back, rollback failed (three ways), an engine that
// goes away mid-way and comes back, and records recovery cannot read.
import assert from 'node:assert/strict';
import { assertExcludes, assertFields, assertIncludes } from '../../support/assert.js';
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
    assertFields(result, { outcome: 'committed', service: 'web', from_image: OLD, to_image: NEW, to_version: '1.1.0' });
    assert.equal(result.error, undefined);
    const now = h.engine.byName('web')!;
    assert.equal(now.imageId, pkg.imageId);
    assert.deepEqual(now.env, ['TOKEN=s3cret'], 'the configuration is carried over');
    assert.equal(h.engine.containers.has(old.id), false);
    assert.equal(h.engine.byName('web.caisson-prev'), undefined);
    assertFields(h.journal.installed('web'), { package_version: '1.1.0', image_ref: NEW, highest_version: '1.1.0' });
    assert.deepEqual(result.steps.map((s) => s.state), [
      'received', 'received', 'staged', 'staged', 'validated', 'loading_image', 'loading_image', 'image_loaded', 'image_loaded', 'switching',
      'switching.stop_old', 'switching.park_old', 'switching.create_new', 'switching.start_new', 'health_checking', 'committing',
      'committing.remove_old', 'closed:committed',
    ]);
    // container environment values never reach the state database
    assertExcludes(JSON.stringify(h.db.prepare('SELECT data FROM updates').all()), 's3cret');
    assert.deepEqual(h.stagingLeft(), []);
  });

  it('says already_installed for the same package again and touches nothing', async () => {
    h.engine.addContainer('web', OLD);
    const pkg = webPackage();
    await h.run(pkg);
    const serving = h.engine.byName('web')!;
    const calls = h.engine.calls.length;
    const again = await h.run(pkg);
    assert.equal(again.outcome, 'already_installed');
    assert.equal(h.engine.byName('web'), serving);
    assert.deepEqual(h.engine.calls.slice(calls).filter((c) => c !== 'dataRoot'), []);
  });

  it('rejects a package for another service revision before the engine is touched', async () => {
    h.engine.addContainer('web', OLD);
    const result = await h.run(webPackage({ revision: 'web-v0' }));
    assert.equal(result.outcome, 'rejected');
    assert.equal(result.error?.code, 'manifest.revision_mismatch');
    assert.deepEqual(h.engine.calls.filter((c) => c !== 'dataRoot'), []);
  });

  it('rejects an image that does not carry its reference, and removes the tag the import added', async () => {
    h.engine.addContainer('web', OLD);
    const result = await h.run(webPackage({ repoTags: ['acme/other:9'] }));
    assert.equal(result.outcome, 'rejected');
    assert.equal(result.error?.code, 'image.reference_mismatch');
    assert.deepEqual([...h.engine.tagMap.keys()], [OLD]);
    assert.equal(h.engine.byName('web')!.ref, OLD);
  });

  it('rejects when the engine refuses the image', async () => {
    h.engine.addContainer('web', OLD);
    h.engine.failOn('loadImage', new CaissonError('docker.load_failed', 'bad layer'));
    const result = await h.run(webPackage());
    assertFields(result, { outcome: 'rejected' });
    assert.equal(result.error?.code, 'docker.load_failed');
  });

  it('rejects with update.cancelled when the operator says no, after validation and before the import', async () => {
    h.engine.addContainer('web', OLD);
    let asked: unknown;
    const result = await h.run(webPackage(), { confirm: async (s) => ((asked = s), false) });
    assert.deepEqual(asked, { service: 'web', from: OLD, to: NEW, version: '1.1.0' });
    assert.equal(result.error?.code, 'update.cancelled');
    assertExcludes(h.engine.calls, 'loadImage');
  });

  it('rolls back a version that exits at once: the old container serves again, the new tag is gone', async () => {
    const old = h.engine.addContainer('web', OLD);
    const result = await h.run(webPackage({ behaviour: 'exits' }));
    assert.equal(result.outcome, 'rolled_back');
    assert.equal(result.error?.code, 'service.start_failed');
    assertFields(h.engine.byName('web'), { id: old.id, running: true });
    assert.deepEqual([...h.engine.containers.keys()], [old.id]);
    assert.equal(h.engine.tagMap.has(NEW), false);
    assert.equal(h.journal.installed('web'), undefined);
  });

  it('rolls back and starts the previous version even when it was not running before the update', async () => {
    const old = h.engine.addContainer('web', OLD, { running: false });
    const result = await h.run(webPackage({ behaviour: 'exits' }));
    assert.equal(result.outcome, 'rolled_back');
    assertFields(h.engine.byName('web'), { id: old.id, running: true });
  });

  it('reports rollback_failed when the previous container is gone (no retries)', async () => {
    const old = h.engine.addContainer('web', OLD);
    const pipeline = h.pipeline((state) => {
      if (state === 'rolling_back') h.engine.containers.delete(old.id);
    });
    const result = await pipeline.run({ packagePath: webPackage({ behaviour: 'exits' }).path, source: 'cli' });
    assert.equal(result.outcome, 'rollback_failed');
    assert.equal(result.error?.code, 'rollback.failed');
    assert.match(result.error?.message, /^rollback failed after service\.start_failed: .*no longer exists/);
    assert.equal(h.engine.calls.filter((c) => c === 'rollback').length, 1);
    assert.deepEqual(h.journal.openRecords(), []);
  });

  it('reports rollback_failed after the bounded restore attempts when the engine keeps failing', async () => {
    h.engine.addContainer('web', OLD);
    h.engine.failOn('rollback', new CaissonError('docker.error', 'failed to update store for object type *libnetwork.endpoint'), Infinity);
    const result = await h.run(webPackage({ behaviour: 'exits' }));
    assert.equal(result.outcome, 'rollback_failed');
    assert.equal(h.engine.calls.filter((c) => c === 'rollback').length, 3); // FAST_TIMING.restoreAttempts
  });

  it('leaves the new version in place with rollback_failed when automatic rollback is off', async () => {
    h.engine.addContainer('manual', 'acme/manual:1.0.0');
    const pkg = h.package({ service: 'manual', revision: 'manual-v1', version: '1.1.0', reference: 'acme/manual:1.1.0', behaviour: 'exits' });
    const result = await h.run(pkg);
    assert.equal(result.outcome, 'rollback_failed');
    assert.match(result.error?.next ?? '', /Automatic rollback is off for manual/);
    assert.equal(h.engine.byName('manual')!.imageId, pkg.imageId);
    assert.notEqual(h.engine.byName('manual.caisson-prev'), undefined, 'the previous container is kept');
  });

  it('imports again when the engine goes away during the upload and comes back', async () => {
    h.engine.addContainer('web', OLD);
    h.engine.failOn('loadImage', new CaissonError('docker.unreachable', 'connection reset'));
    const result = await h.run(webPackage());
    assert.equal(result.outcome, 'committed');
    assert.equal(h.engine.calls.filter((c) => c === 'loadImage').length, 2);
  });

  it('finishes the commit when the engine goes away during it and comes back', async () => {
    h.engine.addContainer('web', OLD);
    const pipeline = h.pipeline((state) => {
      if (state === 'committing') h.engine.gone(1);
    });
    const result = await pipeline.run({ packagePath: webPackage().path, source: 'cli' });
    assert.equal(result.outcome, 'committed');
    assert.equal(h.engine.byName('web.caisson-prev'), undefined);
  });

  it('keeps the record open when the engine stays away during a rollback; recovery finishes it once it is back', async () => {
    const old = h.engine.addContainer('web', OLD);
    const pipeline = h.pipeline((state) => {
      if (state === 'rolling_back') h.engine.gone();
    });
    const result = await pipeline.run({ packagePath: webPackage({ behaviour: 'exits' }).path, source: 'cli' });
    assert.equal(result.outcome, 'rollback_failed');
    assert.deepEqual(h.journal.openRecords().map((r) => r.state), ['rolling_back']);

    h.engine.back();
    const recovered = await h.recover();
    assert.deepEqual(recovered.map((r) => [r.outcome, r.error?.code]), [['rolled_back', 'service.start_failed']]);
    assertFields(h.engine.byName('web'), { id: old.id, running: true });
    assert.equal(h.engine.tagMap.has(NEW), false);
  });

  it('never closes a record in a state it does not know: recovery fails, says which, and keeps it open', async () => {
    h.engine.addContainer('web', OLD);
    const known = await h.run(webPackage({ behaviour: 'exits' }));
    const id = h.journal.begin({ kind: 'update', source: 'usb', packageFile: '/stick/x.edgepkg' });
    h.journal.transition(id, 'switching.teleport_old');
    h.db.prepare("UPDATE updates SET state = 'quantum_leap' WHERE id = ?").run(id);
    const err = await h.recover().catch((e: unknown) => e);
    assert.equal(codeOf(err), 'internal.error');
    assertIncludes((err as Error).message, `${id} (state "quantum_leap")`);
    assert.deepEqual(h.journal.openRecords().map((r) => r.id), [id]);
    assert.equal(h.journal.get(known.update_id)!.outcome, 'rolled_back');
  });

  it('keeps a record with journal data from a newer Caisson open, and recovers the others', async () => {
    h.engine.addContainer('web', OLD);
    await h.runUntilCrash(webPackage(), 'switching.park_old');
    const newer = h.journal.begin({ kind: 'update', source: 'cli', packageFile: '/x.edgepkg' });
    h.journal.transition(newer, 'health_checking');
    h.db.prepare('UPDATE updates SET data = ? WHERE id = ?').run(JSON.stringify({ v: 99, plan: {} }), newer);
    const err = await h.recover().catch((e: unknown) => e);
    assert.match((err as Error).message, /journal data version 99/);
    assert.deepEqual(h.journal.openRecords().map((r) => r.id), [newer]);
    assert.equal(h.engine.byName('web')!.ref, OLD, 'the other record was rolled back');
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
    assert.deepEqual(recovered.map((r) => r.outcome), ['rolled_back']);
    assertFields(h.engine.byName('web'), { id: old.id, running: true });
  });
});
