// Encrypted packages through the real pipeline on the fake engine: one for this device is
// committed; a tampered one, one for other devices and (on a device that requires encryption)
// a plain one are rejected before the engine is asked anything, with nothing left staged.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../../agent/log/logger.js';
import { createProgress } from '../../../agent/log/progress.js';
import { UpdatePipeline } from '../../../agent/pipeline/pipeline.js';
import { Journal } from '../../../agent/store/journal.js';
import { encryptedPackageBytes, layoutOf, testKey } from '../../support/encrypted-packages.js';
import { FAST_TIMING, PipelineHarness } from '../../support/pipeline-harness.js';

const OLD = 'acme/web:1.0.0';
const NEW = 'acme/web:1.1.0';

describe('pipeline: encrypted packages (fake engine)', () => {
  let h: PipelineHarness;
  const device = testKey();
  const other = testKey();
  beforeEach(() => {
    h = new PipelineHarness();
    h.engine.addContainer('web', OLD);
  });
  afterEach(() => h.close());

  function pipeline(requireEncryption = false): UpdatePipeline {
    return new UpdatePipeline({
      catalog: h.catalog,
      journal: new Journal(h.db),
      engine: h.engine,
      stateDir: h.stateDir,
      trustedKeys: [],
      decryption: { keys: () => [device], requireEncryption },
      log: silentLogger(),
      progress: createProgress(process.stderr, false),
      timing: FAST_TIMING,
    });
  }

  function write(name: string, bytes: Buffer): string {
    const path = join(h.dir, `${name}.edgepkg`);
    writeFileSync(path, bytes);
    return path;
  }

  const base = { reference: NEW, service: 'web', revision: 'web-v1', version: '1.1.0' };

  it('commits a package encrypted for this device and another', async () => {
    const pkg = write('sealed', encryptedPackageBytes({ ...base, recipients: [other.publicKey, device.publicKey] }).bytes);
    const result = await pipeline().run({ packagePath: pkg, source: 'cli' });
    assert.equal(result.outcome, 'committed', JSON.stringify(result.error));
    assert.equal(h.engine.byName('web')!.ref, NEW);
    assert.deepEqual(h.stagingLeft(), []);
  });

  const refused: Array<[string, string, () => Buffer, boolean]> = [
    ['a package for other devices', 'crypto.no_matching_key', () => encryptedPackageBytes({ ...base, recipients: [other.publicKey] }).bytes, false],
    [
      'a package whose last chunk was altered',
      'crypto.chunk_tampered',
      () => encryptedPackageBytes({ ...base, recipients: [device.publicKey], mutate: (e) => { e[e.length - 20]! ^= 0x80; return e; } }).bytes,
      false,
    ],
    [
      'a package with two chunks swapped',
      'crypto.chunk_out_of_order',
      () =>
        encryptedPackageBytes({
          ...base,
          recipients: [device.publicKey],
          mutate: (e) => {
            const l = layoutOf(e);
            const first = Buffer.from(e.subarray(l.chunkAt(0), l.chunkAt(1)));
            e.copy(e, l.chunkAt(0), l.chunkAt(1), l.chunkAt(2));
            first.copy(e, l.chunkAt(1));
            return e;
          },
        }).bytes,
      false,
    ],
    ['a plain package on a device that requires encryption', 'policy.encryption_required', () => encryptedPackageBytes({ ...base, recipients: [], plain: true, encryptionToml: () => '' }).bytes, true],
  ];
  for (const [what, code, bytes, strict] of refused) {
    it(`rejects ${what} (${code}) before the engine is asked anything`, async () => {
      const result = await pipeline(strict).run({ packagePath: write('case', bytes()), source: 'cli' });
      assert.equal(result.outcome, 'rejected');
      assert.equal(result.error?.code, code);
      assert.deepEqual(h.engine.calls.filter((c) => c !== 'dataRoot'), []);
      assert.equal(h.engine.byName('web')!.ref, OLD);
      assert.deepEqual(h.stagingLeft(), []);
    });
  }
});
