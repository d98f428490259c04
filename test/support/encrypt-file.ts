// Encrypt a file for one recipient, streaming (test data only, run in its own process so the
// test measuring memory pays nothing for making its input):
//   tsx test/support/encrypt-file.ts IN OUT PUBKEY_BASE64
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { parseRecipient, startEncryption } from '../../agent/package/encryption.js';

const [input, output, recipient] = process.argv.slice(2);
if (!input || !output || !recipient) throw new Error('usage: encrypt-file.ts IN OUT PUBKEY_BASE64');
const { header, sealer } = startEncryption([parseRecipient(recipient)]);
const src = openSync(input, 'r');
const dst = openSync(output, 'wx', 0o600);
const buf = Buffer.allocUnsafe(1 << 20);
writeSync(dst, header);
for (let n = readSync(src, buf); n > 0; n = readSync(src, buf)) writeSync(dst, sealer.push(buf.subarray(0, n)));
writeSync(dst, sealer.finish());
closeSync(src);
closeSync(dst);
