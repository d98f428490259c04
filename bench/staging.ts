// The staging pass alone, without an engine: how long `stagePackage` takes to read, decrypt,
// hash, inspect and write a package of a given size, plain or encrypted, in a fresh process.
// Less noisy than the whole bench (no engine, no import), so before/after comparisons of the
// reader are made here.
//
//   tsx bench/staging.ts make DIR SIZE_MIB      builds DIR/plain-SIZE.edgepkg and DIR/enc-SIZE.edgepkg
//   tsx bench/staging.ts stage DIR SIZE_MIB plain|enc [REPS]
//                                                stages it REPS times (default 3), one child process each
//
// Each stage run prints wall time, user and system CPU, and peak RSS (the kernel's high-water
// mark for that process), then the medians.
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, generateKeyPairSync, randomFillSync } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { deviceIdFor } from '../agent/device/identity.js';
import { decryptionKeyOf, startEncryption } from '../agent/package/encryption.js';
import { stagePackage } from '../agent/package/reader.js';
import { tarEnd, tarHeader, tarPadding } from '../agent/package/tar-writer.js';

const MiB = 1024 * 1024;

async function main(): Promise<void> {
  const [cmd, dir, sizeText, kind, repsText] = process.argv.slice(2);
  if (!dir || !sizeText) throw new Error('usage: staging.ts make DIR SIZE_MIB | stage DIR SIZE_MIB plain|enc [REPS] | once PKG KEY');
  if (cmd === 'make') return make(dir, Number(sizeText));
  if (cmd === 'stage') return stageMany(dir, Number(sizeText), kind === 'enc', Number(repsText ?? 3));
  if (cmd === 'once') return once(dir, sizeText);
  throw new Error(`unknown command ${cmd}`);
}

/** A docker-save image of one random layer, plain and encrypted to a key made here. */
function make(dir: string, sizeMb: number): void {
  mkdirSync(dir, { recursive: true });
  const keyPath = join(dir, 'key.pem');
  if (!existsSync(keyPath)) {
    writeFileSync(keyPath, generateKeyPairSync('x25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  }
  const key = decryptionKeyOf(createPrivateKey(readFileSync(keyPath)));
  const image = craftImage(sizeMb * MiB);
  const { header, sealer } = startEncryption([key.publicKey]);
  const sealed = [header, sealer.push(image), sealer.finish()];
  const sealedSize = sealed.reduce((n, b) => n + b.length, 0);
  const sealedHash = createHash('sha256');
  for (const b of sealed) sealedHash.update(b);
  const imageSha = createHash('sha256').update(image).digest('hex');
  const encryption = `[encryption]\nscheme = "age-v1-x25519"\nrecipients = ["${deviceIdFor(key.publicKey)}"]\nsha256 = "${sealedHash.digest('hex')}"\nsize = ${sealedSize}\n`;
  writePackage(join(dir, `plain-${sizeMb}.edgepkg`), manifest(imageSha, image.length, ''), 'image.tar', [image]);
  writePackage(join(dir, `enc-${sizeMb}.edgepkg`), manifest(imageSha, image.length, encryption), 'image.tar.age', sealed);
}

function craftImage(bytes: number): Buffer {
  const pad = Buffer.allocUnsafe(bytes);
  for (let off = 0; off < bytes; off += 64 * MiB) randomFillSync(pad, off, Math.min(64 * MiB, bytes - off));
  const layer = Buffer.concat([headerFor('pad.bin', pad.length), pad, tarPadding(pad.length), tarEnd()]);
  const diffId = createHash('sha256').update(layer).digest('hex');
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/true'] }, rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] } });
  const configHex = createHash('sha256').update(config).digest('hex');
  const layerDir = createHash('sha256').update(`${configHex}/0`).digest('hex');
  const files: [string, Buffer][] = [
    [`${layerDir}/VERSION`, Buffer.from('1.0')],
    [`${layerDir}/json`, Buffer.from('{}')],
    [`${layerDir}/layer.tar`, layer],
    [`${configHex}.json`, Buffer.from(config)],
    ['manifest.json', Buffer.from(JSON.stringify([{ Config: `${configHex}.json`, RepoTags: ['caisson-bench-staging:2.0.0'], Layers: [`${layerDir}/layer.tar`] }]))],
    ['repositories', Buffer.from('{}')],
  ];
  return Buffer.concat([...files.flatMap(([name, data]) => [headerFor(name, data.length), data, tarPadding(data.length)]), tarEnd()]);
}

function manifest(sha: string, size: number, encryption: string): Buffer {
  return Buffer.from(`format_version = 1
package_type = "service"
package_version = "2.0.0"
created_at = "2026-03-16T18:30:00Z"

[target]
service = "web"
service_revision = "1"
platform = "linux/amd64"

[image]
reference = "caisson-bench-staging:2.0.0"
sha256 = "${sha}"
size = ${size}

[compatibility]
min_updater_version = "0.1.0"

${encryption}`);
}

function writePackage(path: string, manifestBytes: Buffer, imageName: string, image: Buffer[]): void {
  const size = image.reduce((n, b) => n + b.length, 0);
  const fd = openSync(path, 'w');
  try {
    for (const b of [headerFor('manifest.toml', manifestBytes.length), manifestBytes, tarPadding(manifestBytes.length), headerFor(imageName, size), ...image, tarPadding(size), tarEnd()]) {
      writeSync(fd, b);
    }
  } finally {
    closeSync(fd);
  }
}

function headerFor(name: string, size: number): Buffer {
  return tarHeader({ name, size });
}

/** Stage once in this process; print one JSON line. */
async function once(pkg: string, keyPath: string): Promise<void> {
  const key = decryptionKeyOf(createPrivateKey(readFileSync(keyPath)));
  const out = `${pkg}.staging-${process.pid}`;
  rmSync(out, { recursive: true, force: true });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const staged = await stagePackage(pkg, out, { decryptionKeys: () => [key] });
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  rmSync(out, { recursive: true, force: true });
  const usage = process.resourceUsage();
  const rssMib = usage.maxRSS / 1024;
  console.log(JSON.stringify({ ms: Math.round(ms), userMs: Math.round(cpu.user / 1000), sysMs: Math.round(cpu.system / 1000), rssMib: Math.round(rssMib * 10) / 10, faults: usage.minorPageFault, imageSha256: staged.imageSha256.slice(0, 12), encrypted: Boolean(staged.encryption) }));
}

function stageMany(dir: string, sizeMb: number, encrypted: boolean, reps: number): void {
  const pkg = join(dir, `${encrypted ? 'enc' : 'plain'}-${sizeMb}.edgepkg`);
  execFileSync('cat', [pkg], { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 1 }); // into the page cache
  const runs: { ms: number; userMs: number; sysMs: number; rssMib: number }[] = [];
  for (let i = 0; i < reps; i++) {
    const line = execFileSync(process.execPath, [...process.execArgv, process.argv[1]!, 'once', pkg, join(dir, 'key.pem')], { encoding: 'utf8' });
    const r = JSON.parse(line.trim().split('\n').pop()!);
    runs.push(r);
    console.log(`${encrypted ? 'encrypted' : 'plain'} ${sizeMb} MiB run ${i + 1}: ${r.ms} ms wall, ${r.userMs} ms user, ${r.sysMs} ms sys, peak RSS ${r.rssMib} MiB`);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`median: ${med(runs.map((r) => r.ms))} ms wall, ${med(runs.map((r) => r.userMs))} ms user, ${med(runs.map((r) => r.sysMs))} ms sys, max RSS ${Math.max(...runs.map((r) => r.rssMib))} MiB`);
}

await main();
