import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaissonError } from '../../../agent/errors.js';
import { deviceIdFor, ensureDeviceIdentity, readDeviceIdentity } from '../../../agent/device/identity.js';

describe('device identity', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'caisson-device-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is made at first start: an X25519 key pair, the private key 0600, an ID derived from the public key', () => {
    assert.equal(readDeviceIdentity(dir), undefined);
    const id = ensureDeviceIdentity(dir);
    assert.match(id.id, /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/);
    const raw = Buffer.from(id.public_key, 'base64');
    assert.equal(raw.length, 32);
    assert.equal(id.id, deviceIdFor(raw));
    assert.equal(statSync(join(dir, 'device.key')).mode & 0o777, 0o600);
    const priv = createPrivateKey(readFileSync(join(dir, 'device.key')));
    assert.equal(priv.asymmetricKeyType, 'x25519');
    // the private key really is the partner of the shown public key: a key agreement works
    const other = generateKeyPairSync('x25519');
    const devicePub = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw.toString('base64url') }, format: 'jwk' });
    assert.deepEqual(diffieHellman({ privateKey: priv, publicKey: other.publicKey }), diffieHellman({ privateKey: other.privateKey, publicKey: devicePub }));
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'device.json'), 'utf8')), id);
  });

  it('is stable: later starts read the same ID, key and creation time', () => {
    const first = ensureDeviceIdentity(dir);
    const again = ensureDeviceIdentity(dir);
    assert.deepEqual(again, first);
    assert.deepEqual(readDeviceIdentity(dir), first);
  });

  it('rewrites a missing or edited device.json from the key (the key is the truth)', () => {
    const first = ensureDeviceIdentity(dir);
    writeFileSync(join(dir, 'device.json'), JSON.stringify({ ...first, id: 'aaaa-bbbb-cccc-dddd' }));
    assert.equal(ensureDeviceIdentity(dir).id, first.id);
    rmSync(join(dir, 'device.json'));
    assert.equal(ensureDeviceIdentity(dir).public_key, first.public_key);
    assert.equal(JSON.parse(readFileSync(join(dir, 'device.json'), 'utf8')).id, first.id);
  });

  it('tightens a private key left readable by others', () => {
    ensureDeviceIdentity(dir);
    chmodSync(join(dir, 'device.key'), 0o644);
    ensureDeviceIdentity(dir);
    assert.equal(statSync(join(dir, 'device.key')).mode & 0o777, 0o600);
  });

  it('refuses a key file that is not an X25519 private key, with device.identity_invalid', () => {
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' });
    writeFileSync(join(dir, 'device.key'), ed, { mode: 0o600 });
    assert.throws(() => ensureDeviceIdentity(dir), (e: unknown) => e instanceof CaissonError && e.code === 'device.identity_invalid' && /X25519/.test(e.message));
    writeFileSync(join(dir, 'device.key'), 'x'.repeat(100_000), { mode: 0o600 });
    assert.throws(() => ensureDeviceIdentity(dir), (e: unknown) => e instanceof CaissonError && e.code === 'device.identity_invalid');
  });

  it('gives different devices different IDs', () => {
    const other = mkdtempSync(join(tmpdir(), 'caisson-device-'));
    try {
      assert.notEqual(ensureDeviceIdentity(dir).id, ensureDeviceIdentity(other).id);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});
