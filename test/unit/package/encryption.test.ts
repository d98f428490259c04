// The age v1 entry format: round trips of every size around the chunk boundaries, fed in
// pieces of every awkward size, for one and for several recipients; and interoperability
// with the age-encryption package (the reference TypeScript implementation of age), both ways.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Decrypter, Encrypter } from 'age-encryption';
import { CaissonError } from '../../../agent/errors.js';
import { encryptedSize, parseRecipient, PayloadDecryptor, startEncryption, type DecryptionKey } from '../../../agent/package/encryption.js';
import { ageIdentity, ageRecipient, encryptBytes, testKey } from '../../support/encrypted-packages.js';

const CHUNK = 64 * 1024;

function decryptAll(entry: Buffer, keys: DecryptionKey[], piece: number): Buffer {
  const d = new PayloadDecryptor(entry.length, { keys: () => keys });
  const out: Buffer[] = [];
  for (let at = 0; at < entry.length; at += piece) out.push(...d.push(entry.subarray(at, at + piece)));
  d.finish();
  return Buffer.concat(out);
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof CaissonError ? err.code : `not a CaissonError: ${String(err)}`;
  }
  return 'no error';
}

describe('encrypted entries (age v1, X25519)', () => {
  const alice = testKey();
  const bob = testKey();

  for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17]) {
    it(`round-trips ${size} bytes, fed in pieces from 1 B (7 B above one chunk) to 1 MiB`, () => {
      const plain = randomBytes(size);
      const entry = encryptBytes([alice.publicKey], plain);
      const { header } = startEncryption([alice.publicKey]);
      assert.equal(entry.length, encryptedSize(header.length, size));
      for (const piece of size > CHUNK ? [7, CHUNK + 16, 1 << 20] : [1, 7, CHUNK + 16, 1 << 20]) {
        assert.equal(decryptAll(entry, [alice], piece).equals(plain), true);
      }
    });
  }

  it('opens with either of two recipients, and not with a third key', () => {
    const plain = randomBytes(2 * CHUNK + 5);
    const entry = encryptBytes([alice.publicKey, bob.publicKey], plain);
    assert.equal(decryptAll(entry, [alice], 1 << 20).equals(plain), true);
    assert.equal(decryptAll(entry, [bob], 1 << 20).equals(plain), true);
    assert.equal(codeOf(() => decryptAll(entry, [testKey()], 1 << 20)), 'crypto.no_matching_key');
    assert.equal(codeOf(() => decryptAll(entry, [], 1 << 20)), 'crypto.no_matching_key');
  });

  it('takes recipients as `caisson device show` prints them or as age spells them (age1…), and nothing else', () => {
    assert.equal(parseRecipient(alice.publicBase64).equals(alice.publicKey), true);
    assert.equal(parseRecipient(ageRecipient(alice)).equals(alice.publicKey), true);
    const age = ageRecipient(alice);
    const damaged = age.slice(0, 10) + (age[10] === 'q' ? 'p' : 'q') + age.slice(11);
    for (const bad of ['', 'not base64!', alice.publicBase64.slice(0, 40), Buffer.alloc(33).toString('base64'), damaged, age.toUpperCase().replace('AGE1', 'age1')]) {
      assert.equal(codeOf(() => parseRecipient(bad)), 'usage.invalid', bad);
    }
    assert.equal(codeOf(() => startEncryption([])), 'usage.invalid');
    assert.equal(codeOf(() => startEncryption(Array.from({ length: 129 }, () => alice.publicKey))), 'usage.invalid');
  });

  it('writes what the age-encryption package decrypts (the same format, byte for byte)', async () => {
    const plain = randomBytes(3 * CHUNK + 100);
    const entry = encryptBytes([bob.publicKey, alice.publicKey], plain);
    const d = new Decrypter();
    d.addIdentity(ageIdentity(alice));
    const out = await d.decrypt(new Uint8Array(entry));
    assert.equal(Buffer.from(out).equals(plain), true);
  });

  it('reads what the age-encryption package encrypts', async () => {
    const plain = randomBytes(2 * CHUNK + 1);
    const e = new Encrypter();
    e.addRecipient(ageRecipient(alice));
    e.addRecipient(ageRecipient(bob));
    const entry = Buffer.from(await e.encrypt(new Uint8Array(plain)));
    assert.equal(decryptAll(entry, [bob], 1 << 20).equals(plain), true);
  });
});
