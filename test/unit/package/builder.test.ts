// What the builder refuses before it reaches an engine, and an engine it cannot reach (no dockerd
// needed; the builds themselves are in test/integration/package/builder.test.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaissonError } from '../../../agent/errors.js';
import { buildPackage } from '../../../agent/package/builder.js';

const NO_ENGINE = '/nonexistent.sock';
const base = { imageRef: 'caisson-pkgtest/builder:2.0.0', service: 'frontend', serviceRevision: 'frontend-v1', platform: 'linux/amd64', version: '2.0.0' };

describe('package builder (no engine)', () => {
  let work: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'caisson-builder-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('refuses invalid inputs before touching Docker', async () => {
    for (const bad of [{ imageRef: 'x:$(reboot)' }, { service: '../etc' }, { version: '1.2' }, { platform: 'linux amd64' }, { minUpdaterVersion: 'new' }]) {
      const err = await buildPackage({ ...base, out: join(work, 'bad.edgepkg'), ...bad, dockerSocket: NO_ENGINE }).catch((e: unknown) => e);
      assert.ok(err instanceof CaissonError, JSON.stringify(bad));
      assert.equal(err.code, 'usage.invalid', JSON.stringify(bad));
    }
  });

  it('reports an unreachable engine as docker.unreachable', async () => {
    const err = await buildPackage({ ...base, out: join(work, 'x.edgepkg'), dockerSocket: NO_ENGINE }).catch((e: unknown) => e);
    assert.ok(err instanceof CaissonError);
    assert.equal(err.code, 'docker.unreachable');
  });
});
