import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaissonError, type ErrorCode } from '../../../agent/errors.js';
import { checkSignature, generateKeyPair, keyId, loadTrustedKeys, signManifest } from '../../../agent/package/signature.js';
import type { Manifest, StagedPackage } from '../../../agent/package/types.js';

const manifestBytes = Buffer.from('format_version = 1\n# the exact bytes that are signed\n');
const manifest = (pinned = true): Manifest => ({
  format_version: 1,
  package_type: 'service',
  package_version: '1.0.0',
  created_at: '2026-03-16T18:30:00Z',
  target: { service: 'frontend', service_revision: 'frontend-v1', platform: 'linux/amd64' },
  image: pinned ? { reference: 'example/frontend:1.0.0', sha256: 'b'.repeat(64), size: 10 } : { reference: 'example/frontend:1.0.0' },
  compatibility: { min_updater_version: '0.1.0' },
});
const staged = (signature?: Buffer, bytes = manifestBytes): StagedPackage => ({
  dir: '/nonexistent', packageId: 'c'.repeat(64), packageSize: 1, manifestBytes: bytes,
  imagePath: '/nonexistent/image.tar', imageFileName: 'image.tar', imageSha256: 'b'.repeat(64), imageSize: 10,
  ...(signature ? { signature } : {}),
});
const codeOf = (fn: () => unknown): ErrorCode | 'ok' => {
  try {
    fn();
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof CaissonError);
    return (err as CaissonError).code;
  }
};

describe('signatures', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'caisson-sig-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('generates a key pair: PKCS#8 private key (0600) and SPKI public key', () => {
    const files = generateKeyPair(join(dir, 'vendor'));
    assert.deepEqual(files, { privateKeyPath: join(dir, 'vendor.key'), publicKeyPath: join(dir, 'vendor.pub') });
    assert.equal(statSync(files.privateKeyPath).mode & 0o777, 0o600);
    assert.match(readFileSync(files.privateKeyPath, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
    assert.match(readFileSync(files.publicKeyPath, 'utf8'), /^-----BEGIN PUBLIC KEY-----/);
    assert.throws(() => generateKeyPair(join(dir, 'vendor')), (e) => e instanceof CaissonError && /vendor\.key/.test(e.message)); // never overwrites
  });

  it('signs and verifies the exact manifest bytes with a trusted key', () => {
    const files = generateKeyPair(join(dir, 'k'));
    const sig = signManifest(manifestBytes, readFileSync(files.privateKeyPath));
    assert.equal(Buffer.from(sig, 'base64').length, 64);
    const keys = loadTrustedKeys(dir);
    const result = checkSignature(manifest(), staged(Buffer.from(sig + '\n')), keys);
    assert.deepEqual(result, { verified: true, keyId: keyId(keys[0]!) });
    const changed = Buffer.concat([manifestBytes, Buffer.from(' ')]);
    assert.equal(codeOf(() => checkSignature(manifest(), staged(Buffer.from(sig), changed), keys)), 'signature.invalid');
  });

  it('accepts a signature from any one of several trusted keys', () => {
    generateKeyPair(join(dir, 'a'));
    const b = generateKeyPair(join(dir, 'b'));
    const sig = signManifest(manifestBytes, readFileSync(b.privateKeyPath));
    assert.equal(checkSignature(manifest(), staged(Buffer.from(sig)), loadTrustedKeys(dir)).verified, true);
  });

  it('requires a signature, a trusted signer and pinned image when keys are configured', () => {
    const files = generateKeyPair(join(dir, 'k'));
    const keys = loadTrustedKeys(dir);
    const other = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    assert.equal(codeOf(() => checkSignature(manifest(), staged(), keys)), 'signature.missing');
    assert.equal(codeOf(() => checkSignature(manifest(), staged(Buffer.from(signManifest(manifestBytes, other))), keys)), 'signature.invalid');
    assert.equal(codeOf(() => checkSignature(manifest(), staged(Buffer.from('not base64!')), keys)), 'signature.invalid');
    assert.equal(codeOf(() => checkSignature(manifest(), staged(Buffer.alloc(0)), keys)), 'signature.invalid');
    const good = Buffer.from(signManifest(manifestBytes, readFileSync(files.privateKeyPath)));
    assert.equal(codeOf(() => checkSignature(manifest(false), staged(good), keys)), 'signature.unpinned_image');
    const swapped = { ...staged(good), imageSha256: 'e'.repeat(64) };
    assert.equal(codeOf(() => checkSignature(manifest(), swapped, keys)), 'integrity.sha256_mismatch');
  });

  it('without trusted keys, unsigned and signed packages pass unchecked', () => {
    assert.deepEqual(checkSignature(manifest(false), staged(), []), { verified: false });
    assert.deepEqual(checkSignature(manifest(), staged(Buffer.from('garbage')), []), { verified: false });
  });

  it('loads only *.pub files; a missing folder means no keys; a bad key is config.invalid', () => {
    assert.deepEqual(loadTrustedKeys(join(dir, 'missing')), []);
    generateKeyPair(join(dir, 'k'));
    writeFileSync(join(dir, 'README.txt'), 'not a key');
    assert.equal(loadTrustedKeys(dir).length, 1);
    writeFileSync(join(dir, 'broken.pub'), 'not a key');
    assert.equal(codeOf(() => loadTrustedKeys(dir)), 'config.invalid');
    rmSync(join(dir, 'broken.pub'));
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    writeFileSync(join(dir, 'rsa.pub'), rsa);
    assert.equal(codeOf(() => loadTrustedKeys(dir)), 'config.invalid');
    mkdirSync(join(dir, 'file'));
    assert.equal(codeOf(() => loadTrustedKeys(join(dir, 'k.key'))), 'config.invalid'); // a file, not a folder
  });

  it('refuses a non-Ed25519 signing key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    assert.equal(codeOf(() => signManifest(manifestBytes, rsa)), 'usage.invalid');
    assert.equal(createPrivateKey(rsa).asymmetricKeyType, 'rsa');
  });
});
