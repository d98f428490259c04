import assert from 'node:assert/strict';
import { compareSemver, isSemver, parseSemver } from '../../../agent/package/semver.js';

describe('semver', () => {
  it('orders by the semver 2.0 precedence example chain', () => {
    const chain = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.1.0', '2.0.0', '10.0.0'];
    for (let i = 0; i < chain.length; i++) {
      for (let j = 0; j < chain.length; j++) {
        const want = i < j ? -1 : i > j ? 1 : 0;
        assert.equal(compareSemver(chain[i]!, chain[j]!), want, `${chain[i]} vs ${chain[j]}`);
      }
    }
  });
  it('compares numerically, not as text', () => {
    assert.equal(compareSemver('1.10.0', '1.9.0'), 1);
    assert.equal(compareSemver('0.0.9', '0.0.10'), -1);
  });
  it('ignores build metadata', () => {
    assert.equal(compareSemver('1.2.3+build.5', '1.2.3+other'), 0);
    assert.equal(compareSemver('1.2.3-rc.1+b', '1.2.3'), -1);
  });
  it('parses and rejects', () => {
    assert.deepEqual(parseSemver('1.2.3-rc.1+b.7'), { major: 1, minor: 2, patch: 3, prerelease: ['rc', '1'], build: ['b', '7'] });
    for (const bad of ['1.2', '01.2.3', 'v1.2.3', '=1.2.3', ' 1.2.3', '1.2.3-', '1.2.3 ', '', '1.2.3-a..b', '1.0.0-01', '1.0.0-rc.007', '1.0.0-00']) {
      assert.equal(isSemver(bad), false, bad);
      assert.throws(() => compareSemver(bad, '1.0.0'));
    }
  });
  it('refuses leading zeros in numeric pre-release identifiers (SemVer 2.0 §9), so one version has one spelling', () => {
    assert.equal(isSemver('1.0.0-01'), false);
    assert.throws(() => compareSemver('1.0.0-01', '1.0.0-1'));
    assert.throws(() => compareSemver('1.0.0-1', '1.0.0-01'));
    // a zero alone, and digits inside an alphanumeric identifier, are fine
    assert.equal(isSemver('1.0.0-0'), true);
    assert.equal(isSemver('1.0.0-0a1'), true);
    assert.equal(compareSemver('1.0.0-0', '1.0.0-0a1'), -1);
  });
  it('compares through the semver package, as npm does', async () => {
    const lib = (await import('semver')).default;
    const versions = ['0.0.1', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-2', '1.0.0-10', '1.0.0', '1.0.0+b', '2.0.0-rc.1', '10.1.0'];
    for (const a of versions) for (const b of versions) assert.equal(compareSemver(a, b), lib.compare(a, b), `${a} vs ${b}`);
  });
});
