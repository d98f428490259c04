// Whoever can write a trusted key can sign packages: a key folder or key file that anyone
// but root may change is refused with config.invalid, and every start says the policy.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { loadTrustedKeys, signaturePolicyLine } from '../../../agent/package/signature.js';
import { CaissonError } from '../../../agent/errors.js';
import { removeTree, tempDir } from '../../support/intake-helpers.js';

function pem(): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  return publicKey.export({ type: 'spki', format: 'pem' }) as string;
}

const invalid = (re: RegExp) => (err: unknown) => err instanceof CaissonError && err.code === 'config.invalid' && re.test(err.message);

describe('trusted keys: ownership and modes', () => {
  let dir: string;
  let keys: string;
  beforeEach(() => {
    dir = tempDir('caisson-keys-');
    keys = join(dir, 'trusted-keys');
    mkdirSync(keys, { mode: 0o755 });
    chmodSync(keys, 0o755);
    writeFileSync(join(keys, 'vendor.pub'), pem(), { mode: 0o644 });
  });
  afterEach(() => removeTree(dir));

  it('accepts a root-owned folder and key writable by root only', () => {
    assert.equal(loadTrustedKeys(keys).length, 1);
  });

  it('refuses a group-writable key folder', () => {
    chmodSync(keys, 0o775);
    assert.throws(() => loadTrustedKeys(keys), invalid(/trusted keys folder .* is writable by its group/));
  });

  it('refuses a key file anyone may write', () => {
    chmodSync(join(keys, 'vendor.pub'), 0o666);
    assert.throws(() => loadTrustedKeys(keys), invalid(/trusted key .*vendor\.pub is writable by anyone/));
  });

  it('refuses a key folder or key file owned by another user', () => {
    chownSync(join(keys, 'vendor.pub'), 1234, 0);
    assert.throws(() => loadTrustedKeys(keys), invalid(/owned by uid 1234, not root/));
    chownSync(join(keys, 'vendor.pub'), 0, 0);
    chownSync(keys, 1234, 0);
    assert.throws(() => loadTrustedKeys(keys), invalid(/folder .* owned by uid 1234/));
  });

  it('refuses a key that is a link', () => {
    writeFileSync(join(dir, 'elsewhere.pub'), pem());
    symlinkSync(join(dir, 'elsewhere.pub'), join(keys, 'linked.pub'));
    assert.throws(() => loadTrustedKeys(keys), invalid(/linked\.pub is not a regular file/));
  });

  it('says whether signatures are required and how many keys are trusted', () => {
    assert.equal(signaturePolicyLine(2, '/etc/caisson/trusted-keys'), 'signatures: required (2 trusted keys in /etc/caisson/trusted-keys)');
    assert.equal(signaturePolicyLine(1, '/k'), 'signatures: required (1 trusted key in /k)');
    assert.match(signaturePolicyLine(0, '/k'), /^signatures: NOT required \(no trusted keys in \/k\): unsigned packages are accepted$/);
  });
});
