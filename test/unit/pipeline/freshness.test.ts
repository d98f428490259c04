// Freshness and targeting through the real pipeline on the fake engine, with a fake clock:
// expiry against the later of the clock and the time floor, the floor moving only when a
// signed update commits (and surviving a restart), the replay rule and --allow-downgrade,
// and packages for another device refused before anything changes.
import assert from 'node:assert/strict';
import { assertIncludes } from '../../support/assert.js';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { openDatabase } from '../../../agent/store/db.js';
import { IssueRecords } from '../../../agent/store/freshness.js';
import { PipelineHarness } from '../../support/pipeline-harness.js';
import type { FakePackageOptions } from '../../support/fake-packages.js';

const OLD = 'acme/web:1.0.0';
const T0 = '2026-01-01T00:00:00Z';
const T1 = '2026-02-01T00:00:00Z';
const T2 = '2026-03-01T00:00:00Z';
const T3 = '2026-04-01T00:00:00Z';

describe('freshness and targeting in the pipeline (fake engine, fake clock)', function () {
  let h: PipelineHarness;
  let vendorKey: string;
  beforeEach(() => {
    h = new PipelineHarness();
    const pair = generateKeyPairSync('ed25519');
    vendorKey = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    h.trustedKeys = [createPublicKey(pair.publicKey.export({ type: 'spki', format: 'pem' }))];
    h.engine.addContainer('web', OLD);
  });
  afterEach(() => h.close());

  let n = 1;
  /** A signed web package of a new version each time. */
  const web = (o: Partial<FakePackageOptions> = {}) => {
    const v = `1.${n++}.0`;
    return h.package({ service: 'web', revision: 'web-v1', version: v, reference: `acme/web:${v}`, signWith: vendorKey, ...o });
  };
  const floor = () => new IssueRecords(h.db).floor();
  const untouched = (calls = 0) => assert.deepEqual(h.engine.calls.slice(calls).filter((c) => c !== 'dataRoot'), [], 'engine calls');

  describe('expiry', () => {
    it('refuses a package expired by the clock, naming both times, before the engine is touched', async () => {
      h.clock = new Date(T2);
      const result = await h.run(web({ issuedAt: T0, expiresAt: T1 }));
      assert.equal(result.outcome, 'rejected');
      assert.equal(result.error?.code, 'policy.expired');
      assertIncludes(result.error?.message, T1);
      assertIncludes(result.error?.message, '2026-03-01T00:00:00.000Z');
      untouched();
      assert.equal(h.engine.byName('web')!.ref, OLD);
    });

    it('takes a package that has not expired yet, and moves the floor to its issued_at on commit', async () => {
      h.clock = new Date(T0);
      assert.equal(floor(), undefined);
      const result = await h.run(web({ issuedAt: T1, expiresAt: T3 }));
      assert.equal(result.outcome, 'committed');
      assert.equal(floor(), T1);
    });

    it('a package expiring exactly now is expired', async () => {
      h.clock = new Date(T1);
      const result = await h.run(web({ issuedAt: T0, expiresAt: T1 }));
      assert.equal(result.error?.code, 'policy.expired');
    });

    it('a device whose clock is behind judges expiry by its floor (the newest issued_at it committed)', async () => {
      h.clock = new Date('1970-01-01T00:00:10Z'); // no real-time clock: it starts at the epoch
      assert.equal((await h.run(web({ issuedAt: T2 }))).outcome, 'committed');
      // fresh by the floor (it expires one second after it)
      assert.equal((await h.run(web({ issuedAt: T2, expiresAt: '2026-03-01T00:00:01Z' }))).outcome, 'committed');
      const expired = await h.run(web({ issuedAt: T0, expiresAt: T1 }));
      assert.equal(expired.error?.code, 'policy.expired');
      assertIncludes(expired.error?.message, `issued ${T2}`);
      assertIncludes(expired.error?.message, '1970-01-01T00:00:10.000Z');
      assertIncludes(expired.error?.message, T1);
    });

    it('the floor survives a restart (it is in the state database)', async () => {
      h.clock = new Date(T0);
      assert.equal((await h.run(web({ issuedAt: T2 }))).outcome, 'committed');
      h.db.close();
      h.db = openDatabase(h.stateDir);
      const calls = h.engine.calls.length;
      // the clock (T0) says it is fresh; the floor (T2) remembered across the restart says not
      const result = await h.run(web({ issuedAt: T0, expiresAt: T1 }));
      assert.equal(result.error?.code, 'policy.expired');
      untouched(calls);
    });

    it('the floor moves only when an update commits: not on validation, rejection or rollback', async () => {
      h.clock = new Date(T0);
      assert.equal((await h.pipeline().validate(web({ issuedAt: T3 }).path)).outcome, 'valid');
      assert.equal(floor(), undefined, 'after a validation');
      assert.equal((await h.run(web({ issuedAt: T3, behaviour: 'exits' }))).outcome, 'rolled_back');
      assert.equal(floor(), undefined, 'after a rollback');
      assert.equal((await h.run(web({ issuedAt: T3, repoTags: ['acme/other:1'] }))).outcome, 'rejected');
      assert.equal(floor(), undefined, 'after a rejection');
      assert.equal((await h.run(web({ issuedAt: T1 }))).outcome, 'committed');
      assert.equal(floor(), T1);
    });

    it('the floor never moves back, even when the operator goes back to an older issue', async () => {
      h.clock = new Date(T0);
      assert.equal((await h.run(web({ issuedAt: T2 }))).outcome, 'committed');
      assert.equal((await h.run(web({ issuedAt: T1 }), { allowDowngrade: true })).outcome, 'committed');
      assert.equal(floor(), T2);
    });

    it('a signed package without issued_at is refused', async () => {
      const result = await h.run(web());
      assert.equal(result.error?.code, 'signature.no_issued_at');
      untouched();
    });
  });

  describe('unsigned packages (a device without trusted keys)', () => {
    beforeEach(() => {
      h.trustedKeys = [];
    });

    it('still honour expires_at', async () => {
      h.clock = new Date(T2);
      const result = await h.run(web({ signWith: undefined, issuedAt: T0, expiresAt: T1 }));
      assert.equal(result.error?.code, 'policy.expired');
    });

    it('never move the floor, and their issued_at is not held against them', async () => {
      h.clock = new Date(T0);
      assert.equal((await h.run(web({ signWith: undefined, issuedAt: T3 }))).outcome, 'committed');
      assert.equal(floor(), undefined);
      assert.equal((await h.run(web({ signWith: undefined, issuedAt: T1 }))).outcome, 'committed');
      assert.equal((await h.run(web({ signWith: undefined }))).outcome, 'committed');
    });
  });

  describe('replay of an older issue', () => {
    it('refuses a signed package issued before one already committed for the service', async () => {
      h.clock = new Date(T0);
      assert.equal((await h.run(web({ issuedAt: T2 }))).outcome, 'committed');
      const calls = h.engine.calls.length;
      const older = await h.run(web({ issuedAt: T1 })); // a higher version, but issued earlier
      assert.equal(older.outcome, 'rejected');
      assert.equal(older.error?.code, 'policy.older_issue');
      assertIncludes(older.error?.message, T1);
      assertIncludes(older.error?.message, T2);
      untouched(calls);
    });

    it('takes it with --allow-downgrade (the local CLI only), and an equal issue time without', async () => {
      h.clock = new Date(T0);
      assert.equal((await h.run(web({ issuedAt: T2 }))).outcome, 'committed');
      assert.equal((await h.run(web({ issuedAt: T2 }))).outcome, 'committed');
      assert.equal((await h.run(web({ issuedAt: T1 }), { allowDowngrade: true })).outcome, 'committed');
    });

    it('compares within one service only', async () => {
      h.clock = new Date(T0);
      h.engine.addContainer('manual', 'acme/manual:1.0.0');
      assert.equal((await h.run(web({ issuedAt: T2 }))).outcome, 'committed');
      const other = h.package({ service: 'manual', revision: 'manual-v1', version: '1.1.0', reference: 'acme/manual:1.1.0', signWith: vendorKey, issuedAt: T1 });
      assert.equal((await h.run(other)).outcome, 'committed');
    });

    it('a commit finished by recovery after a crash records the issue time too', async () => {
      h.clock = new Date(T0);
      await h.runUntilCrash(web({ issuedAt: T2 }), 'committing');
      const [recovered] = await h.recover();
      assert.equal(recovered?.outcome, 'committed');
      assert.equal(floor(), T2);
    });
  });

  describe('targeting', () => {
    it('no target: any device, and the device is never asked who it is', async () => {
      h.device = { id: 'zzzz-zzzz-zzzz-zzzz', deviceClass: 'other' };
      assert.equal((await h.run(web({ issuedAt: T0 }))).outcome, 'committed');
      assert.equal(h.deviceAsked, 0);
    });

    it('takes a package for its class and for its ID', async () => {
      h.device = { id: 'k3xq-7h2m-pa4d-6wzt', deviceClass: 'kiosk-v2' };
      assert.equal((await h.run(web({ issuedAt: T0, deviceClass: 'kiosk-v2' }))).outcome, 'committed');
      assert.equal((await h.run(web({ issuedAt: T0, deviceIds: ['aaaa-aaaa-aaaa-aaaa', 'k3xq-7h2m-pa4d-6wzt'] }))).outcome, 'committed');
      assert.equal((await h.run(web({ issuedAt: T0, deviceClass: 'kiosk-v2', deviceIds: ['k3xq-7h2m-pa4d-6wzt'] }))).outcome, 'committed');
    });

    for (const [what, target] of [
      ['another class', { deviceClass: 'gateway' }],
      ['other device IDs', { deviceIds: ['aaaa-aaaa-aaaa-aaaa', 'bbbb-bbbb-bbbb-bbbb'] }],
      ['its ID but another class', { deviceClass: 'gateway', deviceIds: ['k3xq-7h2m-pa4d-6wzt'] }],
      ['its class but other IDs', { deviceClass: 'kiosk-v2', deviceIds: ['aaaa-aaaa-aaaa-aaaa'] }],
    ] as const) {
      it(`refuses a package for ${what} before anything changes, naming the device's ID and class`, async () => {
        h.device = { id: 'k3xq-7h2m-pa4d-6wzt', deviceClass: 'kiosk-v2' };
        const result = await h.run(web({ issuedAt: T0, ...target, deviceIds: 'deviceIds' in target ? [...target.deviceIds] : undefined }));
        assert.equal(result.outcome, 'rejected');
        assert.equal(result.error?.code, 'manifest.not_for_this_device');
        assertIncludes(result.error?.message, 'k3xq-7h2m-pa4d-6wzt');
        assertIncludes(result.error?.message, '"kiosk-v2"');
        untouched();
        assert.equal(h.engine.byName('web')!.ref, OLD);
        assert.deepEqual(h.stagingLeft(), []);
      });
    }
  });
});
