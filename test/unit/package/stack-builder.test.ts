// What the stack builder refuses before it reaches an engine (no dockerd needed; the builds
// themselves are in test/integration/package/stack-builder.test.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaissonError } from '../../../agent/errors.js';
import { buildStackPackage, type StackBuildOptions } from '../../../agent/package/builder.js';

const NAMES = ['db', 'api', 'worker'];
const members = NAMES.map((s) => ({ service: s, serviceRevision: `${s}-v1`, imageRef: `caisson-pkgtest/stack-${s}:2.1.0` }));

describe('stack package builder (no engine)', () => {
  let work: string;
  const base = (): StackBuildOptions => ({ stack: 'shop', platform: 'linux/amd64', version: '2.1.0', members, out: join(work, 'shop.edgepkg') });
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'caisson-stack-builder-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('refuses bad input before touching Docker, and leaves nothing behind', async () => {
    const before = readdirSync(work);
    const bad: Array<Partial<StackBuildOptions>> = [
      { stack: 'a/b' },
      { members: [] },
      { members: [...members, members[0]!] },
      { members: [{ ...members[0]!, imageRef: 'x:$(reboot)' }] },
      { members: [{ ...members[0]!, version: '2.1' }] },
      { members: Array.from({ length: 17 }, (_, i) => ({ service: `s${i}`, serviceRevision: 'r', imageRef: `example/s${i}:1` })) },
    ];
    for (const over of bad) {
      const err = await buildStackPackage({ ...base(), ...over, dockerSocket: '/nonexistent.sock' }).catch((e: unknown) => e);
      assert.ok(err instanceof CaissonError, JSON.stringify(over).slice(0, 80));
      assert.equal(err.code, 'usage.invalid', JSON.stringify(over).slice(0, 80));
    }
    assert.deepEqual(readdirSync(work), before);
  });
});
