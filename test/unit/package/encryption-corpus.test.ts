// The hostile corpus of encrypted packages: a wrong key, a bit flipped in every region of the
// encrypted entry, truncation at every chunk boundary, swapped and repeated chunks, oversized
// headers and recipient lists, manifests that lie about the encryption. Each is refused with
// its own code, and nothing is left in (or next to) the staging folder: no decrypted byte.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCatalog } from '../../../agent/config/services.js';
import { CaissonError, type ErrorCode } from '../../../agent/errors.js';
import { stagePackage, type StageOptions } from '../../../agent/package/reader.js';
import { validateStaged } from '../../../agent/package/validate.js';
import { tarEnd, tarEntry } from '../../../agent/package/tar-writer.js';
import {
  encryptedPackageBytes,
  layoutOf,
  SEALED_CHUNK,
  testKey,
  type EncryptedPackageOptions,
} from '../../support/encrypted-packages.js';

const REF = 'caisson-pkgtest/sealed:1.0.0';
const CATALOG = parseCatalog(`catalog_version = 1

[[services]]
name = "sealed-svc"
service_revision = "sealed-v1"
platform = "linux/amd64"
runtime_mode = "docker"

[services.docker]
container_name = "caisson-sealed-svc"
image_reference = "caisson-pkgtest/sealed:current"
`);

const device = testKey();
const other = testKey();
const base: EncryptedPackageOptions = { reference: REF, service: 'sealed-svc', revision: 'sealed-v1', recipients: [other.publicKey, device.publicKey] };

function flip(at: (entry: Buffer) => number): (entry: Buffer) => Buffer {
  return (entry) => {
    entry[at(entry)]! ^= 0x01;
    return entry;
  };
}

const cut = (at: (entry: Buffer) => number) => (entry: Buffer) => entry.subarray(0, at(entry));

function swap(i: number, j: number): (entry: Buffer) => Buffer {
  return (entry) => {
    const l = layoutOf(entry);
    const a = Buffer.from(entry.subarray(l.chunkAt(i), l.chunkAt(i) + SEALED_CHUNK));
    entry.subarray(l.chunkAt(j), l.chunkAt(j) + SEALED_CHUNK).copy(entry, l.chunkAt(i));
    a.copy(entry, l.chunkAt(j));
    return entry;
  };
}

/** A header of `n` stanzas of some other type (its body lines long), then a MAC line. */
function craftedHeader(n: number, bodyLines: number, payload: Buffer): Buffer {
  const body = `${'A'.repeat(64)}\n`.repeat(bodyLines) + 'AAAA\n';
  const stanzas = Array.from({ length: n }, (_, i) => `-> other-type ${i}\n${body}`).join('');
  return Buffer.concat([Buffer.from(`age-encryption.org/v1\n${stanzas}--- ${'A'.repeat(43)}\n`), payload]);
}

interface Case {
  name: string;
  code: ErrorCode;
  pkg: () => Buffer;
  opts?: StageOptions;
}

function cases(): Case[] {
  const out: Case[] = [];
  const enc = (o: Partial<EncryptedPackageOptions>) => () => encryptedPackageBytes({ ...base, ...o }).bytes;
  const chunks = layoutOf(encryptedPackageBytes(base).entry).chunks;

  out.push({ name: 'encrypted for other devices (manifest first: refused before the payload)', code: 'crypto.no_matching_key', pkg: enc({ recipients: [other.publicKey] }) });
  out.push({ name: 'encrypted for other devices (manifest last: no stanza opens)', code: 'crypto.no_matching_key', pkg: enc({ recipients: [other.publicKey], manifestLast: true }) });
  out.push({ name: 'a device without a key', code: 'crypto.no_matching_key', pkg: enc({}), opts: { decryptionKeys: () => [] } });

  // a bit flipped in every region of the entry
  out.push({ name: 'flipped: the intro line', code: 'crypto.header_invalid', pkg: enc({ mutate: flip(() => 3) }) });
  out.push({ name: 'flipped: a stanza type', code: 'crypto.header_invalid', pkg: enc({ mutate: flip((e) => e.indexOf('X25519', e.indexOf('X25519') + 1) + 1) }) });
  out.push({ name: "flipped: this device's ephemeral share", code: 'crypto.header_invalid', pkg: enc({ mutate: flip((e) => e.lastIndexOf('-> X25519 ') + 12) }) });
  out.push({ name: "flipped: this device's wrapped file key", code: 'crypto.header_invalid', pkg: enc({ mutate: flip((e) => e.indexOf('\n', e.lastIndexOf('-> X25519 ')) + 5) }) });
  out.push({ name: 'flipped: the other recipient\'s wrapped key (the MAC covers it)', code: 'crypto.header_invalid', pkg: enc({ mutate: flip((e) => e.indexOf('\n', e.indexOf('-> X25519 ')) + 5) }) });
  out.push({ name: 'flipped: the header MAC', code: 'crypto.header_invalid', pkg: enc({ mutate: flip((e) => e.indexOf('\n--- ') + 10) }) });
  out.push({ name: 'flipped: a newline of the header', code: 'crypto.header_invalid', pkg: enc({ mutate: (e) => { e[e.indexOf('\n')] = 0x20; return e; } }) });
  out.push({ name: 'flipped: the payload nonce', code: 'crypto.chunk_tampered', pkg: enc({ mutate: flip((e) => layoutOf(e).headerSize + 3) }) });
  for (let i = 0; i < chunks; i++) {
    out.push({ name: `flipped: chunk ${i}'s ciphertext`, code: 'crypto.chunk_tampered', pkg: enc({ mutate: flip((e) => layoutOf(e).chunkAt(i) + 100) }) });
    out.push({ name: `flipped: chunk ${i}'s tag`, code: 'crypto.chunk_tampered', pkg: enc({ mutate: flip((e) => Math.min(layoutOf(e).chunkAt(i + 1), e.length) - 1) }) });
  }

  // truncation at every chunk boundary, inside a consistent tar (the entry itself is short)
  out.push({ name: 'cut: inside the header', code: 'crypto.payload_truncated', pkg: enc({ mutate: cut((e) => layoutOf(e).headerSize - 10) }) });
  out.push({ name: 'cut: after the header', code: 'crypto.payload_truncated', pkg: enc({ mutate: cut((e) => layoutOf(e).headerSize) }) });
  out.push({ name: 'cut: inside the nonce', code: 'crypto.payload_truncated', pkg: enc({ mutate: cut((e) => layoutOf(e).headerSize + 8) }) });
  out.push({ name: 'cut: after the nonce', code: 'crypto.payload_truncated', pkg: enc({ mutate: cut((e) => layoutOf(e).payloadAt) }) });
  for (let i = 1; i < chunks; i++) {
    out.push({ name: `cut: after chunk ${i - 1}`, code: 'crypto.payload_truncated', pkg: enc({ mutate: cut((e) => layoutOf(e).chunkAt(i)) }) });
    out.push({ name: `cut: 10 bytes into chunk ${i}`, code: 'crypto.payload_truncated', pkg: enc({ mutate: cut((e) => layoutOf(e).chunkAt(i) + 10) }) });
  }
  out.push({ name: 'cut: the last chunk short by a byte', code: 'crypto.chunk_tampered', pkg: enc({ mutate: cut((e) => e.length - 1) }) });
  // and the file itself cut at every chunk boundary: the tar says so first
  for (let i = 0; i < chunks; i++) {
    out.push({
      name: `file cut at chunk ${i}`,
      code: 'package.truncated',
      pkg: () => {
        const { bytes, entry } = encryptedPackageBytes(base);
        const at = bytes.indexOf(entry.subarray(0, 64)) + layoutOf(entry).chunkAt(i);
        return bytes.subarray(0, at);
      },
    });
  }

  // reordered
  out.push({ name: 'chunks 0 and 1 swapped', code: 'crypto.chunk_out_of_order', pkg: enc({ mutate: swap(0, 1) }) });
  out.push({ name: 'chunks 1 and 3 swapped', code: 'crypto.chunk_out_of_order', pkg: enc({ mutate: swap(1, 3) }) });
  out.push({
    name: 'chunk 1 repeated in place of chunk 2',
    code: 'crypto.chunk_out_of_order',
    pkg: enc({ mutate: (e) => { const l = layoutOf(e); e.copy(e, l.chunkAt(2), l.chunkAt(1), l.chunkAt(2)); return e; } }),
  });
  out.push({
    name: 'chunk 1 dropped',
    code: 'crypto.chunk_out_of_order',
    pkg: enc({ mutate: (e) => { const l = layoutOf(e); return Buffer.concat([e.subarray(0, l.chunkAt(1)), e.subarray(l.chunkAt(2))]); } }),
  });
  out.push({ name: 'a partial last chunk followed by a copy of itself', code: 'crypto.chunk_tampered', pkg: enc({ mutate: (e) => Buffer.concat([e, e.subarray(layoutOf(e).chunkAt(chunks - 1))]) }) });
  out.push({
    name: 'a full last chunk followed by a copy of itself',
    code: 'crypto.chunk_out_of_order',
    pkg: enc({ image: Buffer.alloc(4 * 64 * 1024, 7), mutate: (e) => Buffer.concat([e, e.subarray(layoutOf(e).chunkAt(3))]) }),
  });
  out.push({ name: 'chunks of another encryption of the same image spliced in', code: 'crypto.chunk_tampered', pkg: () => {
    const a = encryptedPackageBytes(base);
    return encryptedPackageBytes({ ...base, image: a.image, mutate: (e) => { const l = layoutOf(e); const la = layoutOf(a.entry); a.entry.copy(e, l.chunkAt(2), la.chunkAt(2), la.chunkAt(3)); return e; } }).bytes;
  } });

  // oversized
  out.push({ name: '129 recipient stanzas', code: 'crypto.too_many_recipients', pkg: enc({ mutate: (e) => craftedHeader(129, 0, e.subarray(layoutOf(e).headerSize)) }) });
  out.push({ name: 'a header over 32 KiB (few, fat stanzas)', code: 'crypto.header_too_large', pkg: enc({ mutate: (e) => craftedHeader(10, 60, e.subarray(layoutOf(e).headerSize)) }) });
  out.push({ name: 'a header that never ends', code: 'crypto.header_too_large', pkg: enc({ mutate: (e) => Buffer.concat([Buffer.from('age-encryption.org/v1\n-> X25519 '), Buffer.alloc(1 << 20, 0x41)]) }) });
  out.push({ name: 'not an age entry at all', code: 'crypto.header_invalid', pkg: enc({ mutate: (e) => Buffer.concat([Buffer.from('AGE-ENCRYPTION.ORG/v1\n'), e]) }) });
  out.push({
    name: 'a manifest listing 129 recipients',
    code: 'manifest.invalid',
    pkg: enc({ encryptionToml: (p) => `[encryption]\nscheme = "age-v1-x25519"\nrecipients = [${Array.from({ length: 129 }, () => `"${p.recipients[1]}"`).join(', ')}]\nsha256 = "${p.sha256}"\nsize = ${p.size}\n` }),
  });

  // the manifest and the entry disagree
  out.push({ name: 'an unknown encryption scheme', code: 'crypto.unsupported_scheme', pkg: enc({ encryptionToml: (p) => `[encryption]\nscheme = "rot13"\nrecipients = ["${p.recipients[1]}"]\nsha256 = "${p.sha256}"\nsize = ${p.size}\n` }) });
  out.push({ name: 'an encrypted entry the manifest does not declare', code: 'crypto.declaration_mismatch', pkg: enc({ encryptionToml: () => '' }) });
  out.push({ name: 'a plain entry the manifest declares encrypted', code: 'crypto.declaration_mismatch', pkg: enc({ plain: true, encryptionToml: (p) => `[encryption]\nscheme = "age-v1-x25519"\nrecipients = ["${p.recipients[1]}"]\nsha256 = "${p.sha256}"\nsize = ${p.size}\n` }) });
  out.push({ name: 'a manifest pinning another encrypted entry', code: 'integrity.sha256_mismatch', pkg: enc({ encryptionToml: (p) => `[encryption]\nscheme = "age-v1-x25519"\nrecipients = ${JSON.stringify(p.recipients)}\nsha256 = "${'0'.repeat(64)}"\nsize = ${p.size}\n` }) });
  out.push({ name: 'a manifest pinning another size', code: 'integrity.size_mismatch', pkg: enc({ encryptionToml: (p) => `[encryption]\nscheme = "age-v1-x25519"\nrecipients = ${JSON.stringify(p.recipients)}\nsha256 = "${p.sha256}"\nsize = ${p.size + 1}\n` }) });
  out.push({ name: 'a manifest listing fewer recipients than the header holds', code: 'crypto.declaration_mismatch', pkg: enc({ encryptionToml: (p) => `[encryption]\nscheme = "age-v1-x25519"\nrecipients = ["${p.recipients[1]}"]\nsha256 = "${p.sha256}"\nsize = ${p.size}\n` }) });
  out.push({ name: 'a plain package on a device that requires encryption', code: 'policy.encryption_required', pkg: enc({ plain: true, encryptionToml: () => '' }), opts: { requireEncryption: true } });
  out.push({
    name: 'a second image entry next to the encrypted one',
    code: 'package.duplicate_entry',
    pkg: () => {
      const { bytes } = encryptedPackageBytes(base);
      return Buffer.concat([bytes.subarray(0, bytes.length - 1024), tarEntry({ name: 'image.tar' }, Buffer.from('x')), tarEnd()]);
    },
  });
  return out;
}

describe('hostile corpus: encrypted packages', function () {
  this.timeout(120_000);
  let work: string;
  const all = cases();

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'caisson-sealed-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('covers every encryption code, wrong keys, every region, every chunk boundary', () => {
    const codes = new Set(all.map((c) => c.code));
    for (const code of [
      'crypto.no_matching_key', 'crypto.header_invalid', 'crypto.header_too_large', 'crypto.too_many_recipients', 'crypto.payload_truncated',
      'crypto.chunk_out_of_order', 'crypto.chunk_tampered', 'crypto.unsupported_scheme', 'crypto.declaration_mismatch', 'policy.encryption_required',
    ] as const) {
      assert.equal(codes.has(code), true, code);
    }
    assert.ok(all.length >= 40);
  });

  it('a valid encrypted package stages and validates (the baseline every case differs from)', async () => {
    const pkg = join(work, 'case.edgepkg');
    const { bytes, image } = encryptedPackageBytes(base);
    writeFileSync(pkg, bytes);
    for (const [copyImage, hashThreadMinBytes] of [[true, undefined], [false, undefined], [true, 0]] as const) {
      const dir = join(work, `valid-${copyImage}`);
      const staged = await stagePackage(pkg, dir, { decryptionKeys: () => [device], copyImage, hashThreadMinBytes });
      await validateStaged(staged, { catalog: CATALOG, trustedKeys: [], updaterVersion: '0.1.0' });
      assert.equal(staged.imageFileName, 'image.tar');
      assert.equal(staged.imageSize, image.length);
      assert.equal(staged.encryption?.recipients, 2);
      assert.deepEqual(readdirSync(dir).sort(), copyImage ? ['image.tar', 'manifest.toml'] : ['manifest.toml']);
      rmSync(dir, { recursive: true });
    }
  });

  // every case with the ciphertext hashed on this thread (small entries), and the first case
  // of each code again on a worker thread (large ones, forced here): the same code and nothing
  // left behind either way (the worker only hashes: where a failure is found does not change,
  // so one case per code covers it, without a worker start for each of the ~60 cases)
  const onWorker = new Set(all.filter((c, i) => all.findIndex((d) => d.code === c.code) === i));
  for (const c of all) for (const threaded of onWorker.has(c) ? [false, true] : [false]) {
    it(`refuses ${c.name}: ${c.code}${threaded ? ' (ciphertext hashed on a worker)' : ''}`, async () => {
      const pkg = join(work, 'case.edgepkg');
      writeFileSync(pkg, c.pkg());
      const dir = join(work, 'staging');
      let code: string | undefined;
      try {
        const staged = await stagePackage(pkg, dir, { decryptionKeys: () => [device], ...c.opts, ...(threaded ? { hashThreadMinBytes: 0 } : {}) });
        try {
          await validateStaged(staged, { catalog: CATALOG, trustedKeys: [], updaterVersion: '0.1.0' });
        } finally {
          rmSync(staged.dir, { recursive: true, force: true }); // what the pipeline does on a refusal
        }
      } catch (err) {
        code = err instanceof CaissonError ? err.code : String(err);
      }
      assert.equal(code, c.code);
      assert.equal(existsSync(dir), false, 'the staging folder is gone');
      assert.deepEqual(readdirSync(work), ['case.edgepkg']);
    });
  }
});
