import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaissonError } from '../../../agent/errors.js';
import { checkNewPassword, hashPassword, parsePasswordHash, readPasswordFile, verifyPassword, writePasswordFile } from '../../../agent/web/password.js';
import { LoginRateLimiter, SessionStore, csrfMatches } from '../../../agent/web/sessions.js';

const FAST = { N: 1024, r: 8, p: 1 };

describe('web password hashing', () => {
  it('stores a salted scrypt hash, never the password, and verifies only the right one', async () => {
    const h = hashPassword('correct horse', FAST);
    assert.equal(h.algorithm, 'scrypt');
    assert.ok(!JSON.stringify(h).includes('correct horse'));
    assert.equal(await verifyPassword('correct horse', h), true);
    assert.equal(await verifyPassword('correct hors', h), false);
    assert.equal(await verifyPassword('', h), false);
    assert.notEqual(hashPassword('correct horse', FAST).hash, h.hash, 'a fresh salt each time');
  });

  it('uses a slow default cost (N = 2^15)', () => {
    const h = hashPassword('correct horse');
    assert.equal(h.N, 32768);
    assert.equal(h.r, 8);
  });

  it('refuses short and oversized new passwords', () => {
    assert.throws(() => checkNewPassword('short'), (e: unknown) => e instanceof CaissonError && e.code === 'usage.invalid');
    assert.throws(() => checkNewPassword('x'.repeat(2000)), (e: unknown) => e instanceof CaissonError && e.code === 'usage.invalid');
    checkNewPassword('eight ch');
  });

  it('rejects an oversized password at login without hashing it', async () => {
    assert.equal(await verifyPassword('x'.repeat(5000), hashPassword('correct horse', FAST)), false);
  });

  it('writes the hash file 0600 and reads it back; a missing file means login is off; garbage is config.invalid', () => {
    const dir = mkdtempSync(join(tmpdir(), 'caisson-pw-'));
    try {
      const f = join(dir, 'web-password');
      assert.equal(readPasswordFile(f), undefined);
      const h = hashPassword('correct horse', FAST);
      writePasswordFile(f, h);
      assert.equal(statSync(f).mode & 0o777, 0o600);
      assert.deepEqual(readPasswordFile(f), h);
      writePasswordFile(f, hashPassword('another one', FAST));
      assert.notDeepEqual(readPasswordFile(f), h, 'replaced');
      writeFileSync(f, '{"algorithm":"md5"}');
      assert.throws(() => readPasswordFile(f), (e: unknown) => e instanceof CaissonError && e.code === 'config.invalid');
      assert.ok(readFileSync(f, 'utf8').length > 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses hash files with absurd cost parameters (no memory blow-up at login)', () => {
    const h = hashPassword('correct horse', FAST);
    assert.throws(() => parsePasswordHash(JSON.stringify({ ...h, N: 2 ** 30 })));
    assert.throws(() => parsePasswordHash(JSON.stringify({ ...h, N: 1000 })), /not a Caisson password hash/);
    assert.throws(() => parsePasswordHash(JSON.stringify({ ...h, p: 1000 })));
  });
});

describe('web sessions and CSRF', () => {
  it('expire after the idle time, are refreshed by use, and end at the absolute limit', () => {
    let now = 1_000_000;
    const store = new SessionStore({ idleMs: 10_000, maxMs: 25_000 }, () => now);
    const s = store.create();
    now += 9_000;
    assert.ok(store.get(s.token), 'used within the idle time');
    now += 9_000;
    assert.ok(store.get(s.token), 'refreshed by the last use');
    now += 9_000; // 27 s after login: past the absolute limit although used 9 s ago
    assert.equal(store.get(s.token), undefined);
    const t = store.create();
    now += 10_000;
    assert.equal(store.get(t.token), undefined, 'idle too long');
    assert.equal(store.size, 0);
  });

  it('peek does not refresh a session', () => {
    let now = 0;
    const store = new SessionStore({ idleMs: 10_000, maxMs: 100_000 }, () => now);
    const s = store.create();
    now = 9_000;
    assert.ok(store.peek(s.token));
    now = 10_500;
    assert.equal(store.get(s.token), undefined);
  });

  it('unknown, empty and destroyed tokens give no session', () => {
    const store = new SessionStore({ idleMs: 10_000, maxMs: 100_000 });
    const s = store.create();
    assert.equal(store.get(undefined), undefined);
    assert.equal(store.get(''), undefined);
    assert.equal(store.get(s.token + 'x'), undefined);
    store.destroy(s.token);
    assert.equal(store.get(s.token), undefined);
  });

  it('keeps a bounded number of sessions, dropping the oldest', () => {
    const store = new SessionStore({ idleMs: 10_000, maxMs: 100_000, maxSessions: 3 });
    const list = [store.create(), store.create(), store.create(), store.create()];
    assert.equal(store.get(list[0]!.token), undefined);
    assert.ok(store.get(list[3]!.token));
    assert.equal(store.size, 3);
  });

  it('tokens are long, random and distinct; CSRF must match exactly', () => {
    const store = new SessionStore({ idleMs: 10_000, maxMs: 100_000 });
    const a = store.create();
    const b = store.create();
    assert.ok(a.token.length >= 43 && a.csrf.length >= 43);
    assert.notEqual(a.token, b.token);
    assert.notEqual(a.token, a.csrf);
    assert.equal(csrfMatches(a, a.csrf), true);
    assert.equal(csrfMatches(a, b.csrf), false);
    assert.equal(csrfMatches(a, undefined), false);
    assert.equal(csrfMatches(a, ''), false);
    assert.equal(csrfMatches(a, a.csrf.slice(0, -1)), false);
  });
});

describe('login rate limit', () => {
  it('blocks a client after its failures within the window, and lets it try again after', () => {
    let now = 0;
    const rl = new LoginRateLimiter({ perClient: 3, overall: 100, windowMs: 60_000 }, () => now);
    for (let i = 0; i < 3; i++) {
      assert.equal(rl.retryAfter('a'), 0);
      rl.failed('a');
      now += 1000;
    }
    assert.equal(rl.retryAfter('a'), 57_000);
    assert.equal(rl.retryAfter('b'), 0, 'another client is not blocked');
    now = 60_001;
    assert.equal(rl.retryAfter('a'), 0);
  });

  it('a success clears the client, but not the overall count', () => {
    let now = 0;
    const rl = new LoginRateLimiter({ perClient: 2, overall: 3, windowMs: 60_000 }, () => now);
    rl.failed('a');
    rl.succeeded('a');
    rl.failed('b');
    rl.failed('c');
    assert.equal(rl.retryAfter("a"), 60_000, 'three failures from anywhere block everyone');
    now = 60_000;
    assert.equal(rl.retryAfter('a'), 0);
  });
});
