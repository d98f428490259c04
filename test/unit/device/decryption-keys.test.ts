// Keys a device decrypts with besides its own (a fleet key): parsing age's key format (and
// agreeing with the age-encryption package on it), adding, listing, removing, and refusing
// bad input with device.key_invalid; then a package encrypted to the fleet key only is
// staged with the added key and refused without it.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Decrypter, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { CaissonError } from '../../../agent/errors.js';
import { ensureDeviceIdentity, readDevicePrivateKey } from '../../../agent/device/identity.js';
import { ageIdentity, ageRecipient, generateAgeKeyFile, parseAgeIdentityFile, parseAgeRecipient } from '../../../agent/device/age-keys.js';
import {
  addDecryptionKey,
  DECRYPTION_KEYS_DIR,
  listDecryptionKeys,
  MAX_DECRYPTION_KEYS,
  readDecryptionKeys,
  readKeyFileArgument,
  removeDecryptionKey,
  stdinText,
  writeFleetKey,
} from '../../../agent/device/decryption-keys.js';
import { decryptionKeyOf, parseRecipient } from '../../../agent/package/encryption.js';
import { stagePackage } from '../../../agent/package/reader.js';
import { encryptedPackageBytes, encryptBytes } from '../../support/encrypted-packages.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CaissonError, `not a CaissonError: ${String(err)}`);
    return err.code;
  }
  assert.fail('did not throw');
}

async function asyncCodeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof CaissonError, `not a CaissonError: ${String(err)}`);
    return err.code;
  }
  assert.fail('did not throw');
}

describe('age key format (fleet keys)', () => {
  it('reads what the age-encryption package generates, to the same public key', async () => {
    const secret = await generateX25519Identity();
    const key = parseAgeIdentityFile(`# created by typage\n${secret}\n`);
    assert.equal(ageRecipient(decryptionKeyOf(key).publicKey), await identityToRecipient(secret));
    assert.equal(ageIdentity(key), secret);
  });

  it('writes age-keygen\'s file format, which the age-encryption package takes as an identity', async () => {
    const { text, privateKey } = generateAgeKeyFile(new Date('2026-12-02T10:00:00.123Z'));
    const lines = text.trimEnd().split('\n');
    assert.equal(lines[0], '# created: 2026-12-02T10:00:00Z');
    const recipient = ageRecipient(decryptionKeyOf(privateKey).publicKey);
    assert.equal(lines[1], `# public key: ${recipient}`);
    assert.match(lines[2]!, /^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
    assert.equal(await identityToRecipient(lines[2]!), recipient);
    // and age opens what the device's format encrypts to it
    const plain = Buffer.from('fleet');
    const d = new Decrypter();
    d.addIdentity(lines[2]!);
    assert.equal(Buffer.from(await d.decrypt(new Uint8Array(encryptBytes([decryptionKeyOf(privateKey).publicKey], plain)))).toString(), 'fleet');
  });

  it('refuses anything but exactly one valid key, without quoting it (device.key_invalid)', async () => {
    const secret = await generateX25519Identity();
    const flipped = secret.slice(0, 20) + (secret[20] === 'Q' ? 'P' : 'Q') + secret.slice(21);
    const recipient = await identityToRecipient(secret);
    const bad: Record<string, string> = {
      empty: '',
      'comments only': '# public key: x\n\n',
      'a PEM key': readFileSync(join(ensureTmpIdentity(), 'device.key'), 'utf8'),
      'two keys': `${secret}\n${secret}\n`,
      'a wrong character (checksum)': flipped,
      'cut short': secret.slice(0, -5),
      'a recipient, not a secret': recipient,
      'mixed case': secret.slice(0, 30) + secret.slice(30).toLowerCase(),
      'trailing words': `${secret} extra`,
    };
    for (const [what, text] of Object.entries(bad)) {
      let err: unknown;
      try {
        parseAgeIdentityFile(text);
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof CaissonError, what);
      assert.equal(err.code, 'device.key_invalid', what);
      assert.ok(!err.message.includes(secret.slice(16, 40)), `${what}: the message quotes the secret`);
    }
  });

  it('--encrypt-to takes a public key as base64 or as age1…, and refuses a damaged age1…', async () => {
    const secret = await generateX25519Identity();
    const recipient = await identityToRecipient(secret);
    const raw = parseRecipient(recipient);
    assert.deepEqual(raw, parseAgeRecipient(recipient));
    assert.deepEqual(parseRecipient(raw.toString('base64')), raw);
    assert.equal(codeOf(() => parseRecipient(recipient.slice(0, -1) + (recipient.endsWith('q') ? 'p' : 'q'))), 'usage.invalid');
  });
});

const tmpDirs: string[] = [];
function ensureTmpIdentity(): string {
  const dir = mkdtempSync(join(tmpdir(), 'caisson-keyid-'));
  tmpDirs.push(dir);
  ensureDeviceIdentity(dir);
  return dir;
}
after(() => tmpDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('added decryption keys (caisson device add-key / remove-key)', () => {
  let dir: string;
  let fleet: { text: string; secret: string; publicKey: Buffer };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'caisson-keys-'));
    ensureDeviceIdentity(dir);
    const made = generateAgeKeyFile();
    fleet = { text: made.text, secret: made.text.trimEnd().split('\n').pop()!, publicKey: decryptionKeyOf(made.privateKey).publicKey };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('stores the key 0600 in a 0700 folder beside the identity, lists only its public half, and is idempotent', () => {
    const first = addDecryptionKey(dir, fleet.text);
    assert.equal(first.added, true);
    assert.equal(first.public_key, fleet.publicKey.toString('base64'));
    assert.equal(first.age_recipient, ageRecipient(fleet.publicKey));
    const keysDir = join(dir, DECRYPTION_KEYS_DIR);
    assert.equal(statSync(keysDir).mode & 0o777, 0o700);
    const file = join(keysDir, `${first.id}.key`);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(readFileSync(file, 'utf8'), `${fleet.secret}\n`);
    const listed = listDecryptionKeys(dir);
    assert.deepEqual(listed, [{ id: first.id, public_key: first.public_key, age_recipient: first.age_recipient }]);
    assert.ok(!JSON.stringify(listed).includes('SECRET'));
    // the same key again (bare line this time): nothing changes
    assert.equal(addDecryptionKey(dir, `${fleet.secret}\n`).added, false);
    assert.deepEqual(readdirSync(keysDir), [`${first.id}.key`]);
  });

  it('says the device\'s own key is held already, and never removes it', () => {
    const own = readDevicePrivateKey(dir)!;
    const r = addDecryptionKey(dir, ageIdentity(own));
    assert.equal(r.added, false);
    assert.deepEqual(listDecryptionKeys(dir), []);
    assert.equal(codeOf(() => removeDecryptionKey(dir, r.public_key)), 'device.key_not_found');
    assert.ok(readDevicePrivateKey(dir));
  });

  it('removes a key named by its ID, base64 or age1… public key; an unknown one is device.key_not_found', () => {
    for (const name of ['id', 'public_key', 'age_recipient'] as const) {
      const added = addDecryptionKey(dir, fleet.text);
      assert.equal(removeDecryptionKey(dir, added[name]).id, added.id);
      assert.deepEqual(listDecryptionKeys(dir), []);
    }
    assert.equal(codeOf(() => removeDecryptionKey(dir, 'aaaa-bbbb-cccc-dddd')), 'device.key_not_found');
  });

  it('reads a key file argument without following a link, and bounds its size and stdin\'s', () => {
    const file = join(dir, 'fleet.key');
    writeFileSync(file, fleet.text);
    assert.equal(readKeyFileArgument(file), fleet.text);
    symlinkSync(file, join(dir, 'link.key'));
    assert.equal(codeOf(() => readKeyFileArgument(join(dir, 'link.key'))), 'fs.error');
    assert.equal(codeOf(() => readKeyFileArgument(dir)), 'fs.error');
    writeFileSync(join(dir, 'big.key'), `${'#'.repeat(5000)}\n${fleet.secret}\n`);
    assert.equal(codeOf(() => readKeyFileArgument(join(dir, 'big.key'))), 'device.key_invalid');
    assert.equal(codeOf(() => stdinText(Buffer.alloc(4097, 0x23))), 'device.key_invalid');
  });

  it('refuses a keys folder that is a link, and an installed key file that is a link or damaged', () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'caisson-keys-elsewhere-'));
    tmpDirs.push(elsewhere);
    symlinkSync(elsewhere, join(dir, DECRYPTION_KEYS_DIR));
    assert.equal(codeOf(() => addDecryptionKey(dir, fleet.text)), 'device.key_invalid');
    assert.equal(codeOf(() => readDecryptionKeys(dir)), 'device.key_invalid');
    assert.deepEqual(readdirSync(elsewhere), []);
    rmSync(join(dir, DECRYPTION_KEYS_DIR));

    const added = addDecryptionKey(dir, fleet.text);
    const file = join(dir, DECRYPTION_KEYS_DIR, `${added.id}.key`);
    writeFileSync(file, 'AGE-SECRET-KEY-1BROKEN\n');
    assert.equal(codeOf(() => readDecryptionKeys(dir)), 'device.key_invalid');
    // adding the key again repairs it
    assert.equal(addDecryptionKey(dir, fleet.text).added, true);
    assert.equal(readDecryptionKeys(dir).length, 1);
    rmSync(file);
    symlinkSync(join(dir, 'device.key'), file);
    assert.equal(codeOf(() => readDecryptionKeys(dir)), 'device.key_invalid');
  });

  it('tightens a keys folder or key file others could read', () => {
    const added = addDecryptionKey(dir, fleet.text);
    const keysDir = join(dir, DECRYPTION_KEYS_DIR);
    const file = join(keysDir, `${added.id}.key`);
    chmodSync(keysDir, 0o755);
    chmodSync(file, 0o644);
    assert.equal(readDecryptionKeys(dir).length, 1);
    assert.equal(statSync(keysDir).mode & 0o777, 0o700);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  it(`holds at most ${MAX_DECRYPTION_KEYS} added keys`, () => {
    for (let i = 0; i < MAX_DECRYPTION_KEYS; i++) assert.equal(addDecryptionKey(dir, generateAgeKeyFile().text).added, true);
    assert.equal(codeOf(() => addDecryptionKey(dir, fleet.text)), 'device.key_invalid');
    assert.equal(listDecryptionKeys(dir).length, MAX_DECRYPTION_KEYS);
  });

  it('writes a fleet key file 0600 and never over an existing file (caisson key fleet)', () => {
    const file = join(dir, 'vendor', 'fleet.key');
    mkdirSync(join(dir, 'vendor'));
    const made = writeFleetKey(file);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(addDecryptionKey(dir, readFileSync(file, 'utf8')).public_key, made.public_key);
    assert.equal(codeOf(() => writeFleetKey(file)), 'usage.invalid');
  });

  it('opens a package encrypted to the fleet key only once the key was added; before, crypto.no_matching_key', async () => {
    const { bytes } = encryptedPackageBytes({ reference: 'fleet/web:2.0.0', service: 'web', revision: 'r1', recipients: [fleet.publicKey] });
    const pkg = join(dir, 'fleet.edgepkg');
    writeFileSync(pkg, bytes);
    const keys = () => [readDevicePrivateKey(dir)!, ...readDecryptionKeys(dir)].map(decryptionKeyOf);
    assert.equal(await asyncCodeOf(stagePackage(pkg, join(dir, 'staging-1'), { decryptionKeys: keys, copyImage: false })), 'crypto.no_matching_key');
    addDecryptionKey(dir, fleet.text);
    const staged = await stagePackage(pkg, join(dir, 'staging-2'), { decryptionKeys: keys, copyImage: false });
    assert.equal(staged.encryption?.recipients, 1);
    assert.deepEqual(staged.imageArchive?.repoTags, ['fleet/web:2.0.0']);
  });
});
