// `npm run bench` (scripts/bench.sh): measure Caisson against the machine's limits and the
// raw docker path, for packages of about 10 MB, 200 MB and 1 GB (BENCH_SIZES=10,200 picks
// sizes in MB; 0 none), and a stack of three services, 200 MB of images together
// (BENCH_STACK_MB; 0 skips it). Prints tables with ratios and writes bench/results/latest.json.
// Everything it creates is named caisson-bench-* (label caisson.bench=1), uses ports
// 18400-18499 on 127.0.0.1 only, and is removed at the end.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import {
  BENCH_LABEL, MiB, Prober, buildImage, fmtDelta, fmtMs, fmtRate, longest, median, must, outages, ratio, run, sleep, table,
  waitAnswer, waitHealthyLikeAPerson, type Run, type Sample,
} from './lib.js';
import { benchStack, STACK_REPO, type StackResult } from './stack.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = process.env.CAISSON_BENCH_CLI ?? join(REPO, 'dist', 'agent', 'cli', 'main.js');
const WORK = process.env.BENCH_DIR ?? '/var/tmp/caisson-bench';
/** The stack case: three services with this many MiB of images together (0 skips it). */
const STACK_MB = Number(process.env.BENCH_STACK_MB ?? 200);
const SIZES = (process.env.BENCH_SIZES ?? '10,200,1024').split(',').map((s) => Number(s.trim())).filter((n) => n > 0);
/** Sizes of the encrypted case (issue 14): BENCH_ENCRYPTED_SIZES=200,1024 by default; empty = none. */
const ENCRYPTED_SIZES = (process.env.BENCH_ENCRYPTED_SIZES ?? '200,1024').split(',').map((s) => Number(s.trim())).filter((n) => n > 0);
const CONTAINER = 'caisson-bench-web';
const STH = 'caisson-bench-sth';
const REPO_REF = 'caisson-bench-web';
const BASE_REF = `${REPO_REF}:1.0.0`;
const BROKEN_REF = `${REPO_REF}:9.0.0-broken`;
const PORT = 18400;
const STH_PORT = 18401;
const HC = { timeoutSecs: 8, pollSecs: 0.1, stableSecs: 2 };
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const url = (port: number) => `http://127.0.0.1:${port}/health`;
const runOptions = ['--label', BENCH_LABEL, '--restart', 'unless-stopped', '-p', `127.0.0.1:${PORT}:8080`, '-e', 'GREETING=hello'];

interface Step { state: string; at: string; detail?: string }

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

function caisson(args: string[], opts: { rss?: boolean } = {}): Promise<Run> {
  return run(process.execPath, [CLI, ...args], { rss: opts.rss });
}

function common(stateDir: string): string[] {
  return ['--services', join(WORK, 'services.toml'), '--state-dir', stateDir, '--trusted-keys', join(WORK, 'no-keys')];
}

let stateSeq = 0;
function freshState(label: string): string {
  const dir = join(WORK, `state-${label}-${++stateSeq}`);
  rmSync(dir, { recursive: true, force: true });
  return dir;
}

function freeBytes(path: string): number {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}

async function quietDocker(...args: string[]): Promise<void> {
  await run('docker', args);
}

/** The service as a fresh device runs it: CONTAINER from `ref`, answering on PORT. */
async function startService(ref: string): Promise<void> {
  await quietDocker('rm', '-f', CONTAINER, `${CONTAINER}.caisson-prev`);
  await must('docker', ['run', '-d', '--name', CONTAINER, ...runOptions, ref]);
  await waitAnswer(url(PORT), 30_000);
}

function at(steps: Step[], state: string, which: 'first' | 'last' = 'first'): number | undefined {
  const hits = steps.filter((s) => s.state === state);
  const s = which === 'first' ? hits[0] : hits[hits.length - 1];
  return s ? Date.parse(s.at) : undefined;
}

function span(steps: Step[], from: string, to: string): number | undefined {
  const a = at(steps, from);
  const b = at(steps, to);
  return a !== undefined && b !== undefined ? b - a : undefined;
}

/** A container's start-to-answer: its first start (create + start) and its restart after a stop. */
interface StartTimes { run: number; restart: number }

/** From start() to the first answer, probing only once start() returned: the engine's quiet figure. */
async function quietStart(c: Docker.Container): Promise<number> {
  const t0 = Date.now();
  await c.start();
  return (await waitAnswer(url(STH_PORT), 30_000, 10)) - t0;
}

/** From start() to the first answer as clients see it: they already knock when start() is called. */
async function knockedStart(c: Docker.Container): Promise<number> {
  const prober = new Prober(url(STH_PORT));
  try {
    const t0 = Date.now();
    await c.start();
    return (await prober.firstOkSince(t0)) - t0;
  } finally {
    await prober.stop();
  }
}

/** Medians over `reps` of `ref` started by itself on STH_PORT (then stopped and started again), each start timed by `measure`. */
async function startToAnswer(ref: string, reps: number, measure: (c: Docker.Container) => Promise<number>): Promise<StartTimes> {
  const runs: number[] = [];
  const restarts: number[] = [];
  for (let i = 0; i < reps; i++) {
    await quietDocker('rm', '-f', STH);
    const c = await docker.createContainer({
      name: STH,
      Image: ref,
      Labels: { 'caisson.bench': '1' },
      ExposedPorts: { '8080/tcp': {} },
      HostConfig: { PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: String(STH_PORT) }] } },
    });
    runs.push(await measure(c));
    await c.stop({ t: 10 });
    restarts.push(await measure(c));
    await c.remove({ force: true });
  }
  return { run: median(runs), restart: median(restarts) };
}

/**
 * startToAnswer with clients knocking and the service stopped, as during a switch or a rollback:
 * a stop that leaves the bridge without containers flushes the host's ARP cache, and a client
 * connecting during the next start makes docker-proxy wait for ARP (re-sent after ~1 s).
 * The service runs and answers on PORT again afterwards.
 */
async function startToAnswerKnocking(ref: string, reps: number): Promise<StartTimes> {
  const service = docker.getContainer(CONTAINER);
  await service.stop({ t: 10 });
  const times = await startToAnswer(ref, reps, knockedStart);
  await service.start();
  await waitAnswer(url(PORT), 30_000);
  return times;
}

interface SizeResult {
  size_mb: number;
  package_bytes: number;
  validate: {
    openssl_ms: number; sha256sum_ms: number; caisson_ms: number;
    caisson_in_process_ms?: number; caisson_max_rss_kb?: number;
    throughput_mb_s: { openssl: number; sha256sum: number; caisson: number; caisson_in_process?: number };
    ratio_vs_openssl: number; in_process_ratio_vs_openssl?: number;
  };
  load: {
    raw_ms: number; raw_downtime_ms?: number; raw_phases_ms: Record<string, number>;
    caisson_ms: number; caisson_outcome: string; caisson_max_rss_kb?: number; caisson_phases_ms: Record<string, number | undefined>;
    ratio_vs_raw: number;
    raw_runs_ms: number[]; caisson_runs_ms: number[]; caisson_downtime_runs_ms: Array<number | undefined>;
  };
  /** overhead_ms: beyond the start-to-answer with clients knocking; overhead_vs_quiet_ms: beyond the quiet one. */
  downtime: {
    caisson_ms?: number; new_container_start_to_answer_ms: number; new_container_start_to_answer_knocking_ms: number;
    overhead_ms?: number; overhead_vs_quiet_ms?: number; stop_to_start_new_ms?: number;
  };
  rollback: {
    outcome: string; verdict_to_answer_ms?: number; verdict_to_start_old_ms?: number;
    old_container_start_ms: number; old_container_start_knocking_ms: number;
    /** the target stays on the quiet restart (the stricter base; it is met either way) */
    overhead_ms?: number; overhead_vs_knocking_ms?: number;
  };
}

async function benchSize(sizeMb: number, index: number): Promise<SizeResult> {
  const label = `${sizeMb}mb`;
  const newRef = `${REPO_REF}:2.0.${index}-${label}`;
  const pkg = join(WORK, `web-${label}.edgepkg`);
  const need = sizeMb * MiB * 5 + 1024 * MiB;
  if (freeBytes(WORK) < need) throw new Error(`not enough free disk for the ${sizeMb} MB case: need ${Math.round(need / MiB)} MiB in ${WORK}`);

  log(`${label}: building image ${newRef} (${sizeMb} MiB of random padding) and its package`);
  await buildImage(newRef, `2.0.${index}`, Math.max(0, sizeMb * MiB - 2 * MiB), 'healthy', WORK);
  await must(process.execPath, [CLI, 'package', 'build', '--image', newRef, '--service', 'web', '--service-revision', 'web-v1',
    '--platform', 'linux/amd64', '--version', `2.0.${index}`, '-o', pkg]);
  await must('docker', ['rmi', newRef]);
  const bytes = statSync(pkg).size;

  // --- validate vs the hashing tools, same file, warm page cache ------------------------------
  await must('sh', ['-c', 'cat "$1" > /dev/null', 'sh', pkg]);
  const reps = sizeMb >= 1000 ? 2 : 3;
  const t = { openssl: [] as number[], sha256sum: [] as number[], caisson: [] as number[], inproc: [] as number[], rss: [] as number[] };
  for (let i = 0; i < reps; i++) {
    t.openssl.push((await must('openssl', ['dgst', '-sha256', pkg])).ms);
    t.sha256sum.push((await must('sha256sum', [pkg])).ms);
    const v = await caisson(['package', 'validate', '--json', ...common(freshState(`validate-${label}`)), pkg], { rss: true });
    const res = JSON.parse(v.stdout) as { outcome: string; steps: Step[] };
    if (res.outcome !== 'valid') throw new Error(`validate said ${res.outcome}: ${v.stdout}`);
    t.caisson.push(v.ms);
    const ip = span(res.steps, 'received', 'validated');
    if (ip !== undefined) t.inproc.push(ip);
    if (v.maxRssKb) t.rss.push(v.maxRssKb);
  }
  const vo = median(t.openssl);
  const vs = median(t.sha256sum);
  const vc = median(t.caisson);
  const vip = t.inproc.length ? median(t.inproc) : undefined;
  const mbps = (ms: number) => bytes / 1e6 / (ms / 1000);

  // --- the raw path a person would type, and caisson package load --yes, alternating ----------------
  const loadReps = Number(process.env.BENCH_REPS ?? 3);
  const resetToOld = async () => {
    // the device runs the old version again and does not have the new image
    await quietDocker('rm', '-f', CONTAINER, `${CONTAINER}.caisson-prev`);
    await quietDocker('rmi', newRef);
    await startService(BASE_REF);
    await must('sh', ['-c', 'cat "$1" > /dev/null', 'sh', pkg]); // both start from a warm page cache
    // ... and with no writes pending: the raw path leaves the engine's gigabytes unflushed,
    // which the next run would otherwise write back (caisson's pre-switch flush included)
    await must('sync', []);
  };
  const raws: Array<{ ms: number; down?: number; phases: Record<string, number> }> = [];
  const loads: Array<{ run: Run; steps: Step[]; down?: number }> = [];
  let prober: Prober;
  let samples: Sample[];
  for (let rep = 0; rep < loadReps; rep++) {
    log(`${label}: raw docker path (${rep + 1}/${loadReps})`);
    await resetToOld();
    prober = new Prober(url(PORT));
    await sleep(200);
    const r0 = Date.now();
    await must('sh', ['-c', 'tar -xOf "$1" image.tar | docker load', 'sh', pkg]);
    const r1 = Date.now();
    await must('docker', ['rm', '-f', CONTAINER]);
    await must('docker', ['run', '-d', '--name', CONTAINER, ...runOptions, newRef]);
    const r2 = Date.now();
    await waitHealthyLikeAPerson(url(PORT), HC.pollSecs * 1000, HC.stableSecs * 1000, HC.timeoutSecs * 1000);
    const r3 = Date.now();
    samples = await prober.stop();
    raws.push({ ms: r3 - r0, down: longest(outages(samples))?.ms, phases: { load: r1 - r0, replace: r2 - r1, health: r3 - r2 } });

    log(`${label}: caisson package load (${rep + 1}/${loadReps})`);
    await resetToOld();
    prober = new Prober(url(PORT));
    await sleep(200);
    const run1 = await caisson(['package', 'load', '--yes', '--json', ...common(freshState(`load-${label}`)), pkg], { rss: true });
    samples = await prober.stop();
    const res = JSON.parse(run1.stdout) as { outcome: string; steps: Step[] };
    if (res.outcome !== 'committed') throw new Error(`load said ${res.outcome}: ${run1.stdout}\n${run1.stderr}`);
    loads.push({ run: run1, steps: res.steps, down: longest(outages(samples))?.ms });
  }
  const medianOf = <T>(xs: T[], key: (x: T) => number): T => [...xs].sort((a, b) => key(a) - key(b))[Math.floor((xs.length - 1) / 2)]!;
  const rawMid = medianOf(raws, (x) => x.ms);
  const raw = { ms: median(raws.map((x) => x.ms)), phases: rawMid.phases };
  const rawDown = { ms: median(raws.map((x) => x.down ?? NaN)) };
  const mid = medianOf(loads, (x) => x.run.ms);
  const l = { ...mid.run, ms: median(loads.map((x) => x.run.ms)), maxRssKb: Math.max(...loads.map((x) => x.run.maxRssKb ?? 0)) || undefined };
  const loaded = { outcome: 'committed', steps: mid.steps };
  const s = loaded.steps;
  const down = { ms: median(loads.map((x) => x.down ?? NaN)) };
  const startNew = at(s, 'switching.start_new');
  const stopOld = at(s, 'switching.stop_old');

  // the new container's own start-to-answer, measured on its own (same image, another port)
  log(`${label}: container start times`);
  const sta = await startToAnswer(newRef, 3, quietStart);
  const knocking = await startToAnswerKnocking(newRef, 3);

  // --- rollback: a broken version replaces the (now committed) new one ------------------------------------
  log(`${label}: rollback`);
  prober = new Prober(url(PORT));
  await sleep(200);
  const rb = await caisson(['package', 'load', '--yes', '--json', ...common(freshState(`rollback-${label}`)), join(WORK, 'broken.edgepkg')]);
  // keep probing until the old version answers again (the CLI returns after its health check)
  await waitAnswer(url(PORT), 10_000).catch(() => undefined);
  await sleep(300);
  samples = await prober.stop();
  let rbRes: { outcome: string; steps: Step[] };
  try {
    rbRes = JSON.parse(rb.stdout) as { outcome: string; steps: Step[] };
  } catch {
    rbRes = { outcome: `unparsable (exit ${rb.code})`, steps: [] };
  }
  if (!Array.isArray(rbRes.steps)) {
    log(`${label}: the rollback run did not finish normally (exit ${rb.code}): ${rb.stdout.slice(0, 1500)} ${rb.stderr.slice(-1500)}`);
    rbRes.steps = [];
  }
  const verdict = at(rbRes.steps, 'rolling_back');
  const startOld = at(rbRes.steps, 'rolling_back.start_old');
  const back = verdict !== undefined ? samples.find((x) => x.ok && x.t >= verdict)?.t : undefined;
  const rbBack = verdict !== undefined && back !== undefined ? back - verdict : undefined;

  // --- clean up this size ---------------------------------------------------------------------------------
  await quietDocker('rm', '-f', CONTAINER, `${CONTAINER}.caisson-prev`);
  await quietDocker('rmi', newRef);
  if (index > 0) rmSync(pkg, { force: true }); // the first stays for the inbox run
  for (const d of readdirSync(WORK)) if (d.startsWith('state-')) rmSync(join(WORK, d), { recursive: true, force: true });

  const phases = {
    stage: span(s, 'received', 'staged'),
    checks: span(s, 'staged', 'validated'),
    import: span(s, 'loading_image', 'image_loaded'),
    plan: span(s, 'image_loaded', 'switching'),
    switch: span(s, 'switching', 'health_checking'),
    health: span(s, 'health_checking', 'committing'),
    commit: span(s, 'committing', 'closed:committed'),
    process_overhead: (() => {
      const a = at(s, 'received');
      const b = at(s, 'closed:committed');
      return a !== undefined && b !== undefined ? mid.run.ms - (b - a) : undefined;
    })(),
  };
  return {
    size_mb: sizeMb,
    package_bytes: bytes,
    validate: {
      openssl_ms: vo, sha256sum_ms: vs, caisson_ms: vc, caisson_in_process_ms: vip,
      caisson_max_rss_kb: t.rss.length ? Math.max(...t.rss) : undefined,
      throughput_mb_s: { openssl: mbps(vo), sha256sum: mbps(vs), caisson: mbps(vc), caisson_in_process: vip ? mbps(vip) : undefined },
      ratio_vs_openssl: vo / vc,
      in_process_ratio_vs_openssl: vip ? vo / vip : undefined,
    },
    load: {
      raw_ms: raw.ms, raw_downtime_ms: rawDown?.ms, raw_phases_ms: raw.phases,
      caisson_ms: l.ms, caisson_outcome: loaded.outcome, caisson_max_rss_kb: l.maxRssKb, caisson_phases_ms: phases,
      ratio_vs_raw: l.ms / raw.ms,
      raw_runs_ms: raws.map((x) => x.ms), caisson_runs_ms: loads.map((x) => x.run.ms), caisson_downtime_runs_ms: loads.map((x) => x.down),
    },
    downtime: {
      caisson_ms: down?.ms,
      new_container_start_to_answer_ms: sta.run,
      new_container_start_to_answer_knocking_ms: knocking.run,
      overhead_ms: down ? down.ms - knocking.run : undefined,
      overhead_vs_quiet_ms: down ? down.ms - sta.run : undefined,
      stop_to_start_new_ms: stopOld !== undefined && startNew !== undefined ? startNew - stopOld : undefined,
    },
    rollback: {
      outcome: rbRes.outcome,
      verdict_to_answer_ms: rbBack,
      verdict_to_start_old_ms: verdict !== undefined && startOld !== undefined ? startOld - verdict : undefined,
      old_container_start_ms: sta.restart,
      old_container_start_knocking_ms: knocking.restart,
      overhead_ms: rbBack !== undefined ? rbBack - sta.restart : undefined,
      overhead_vs_knocking_ms: rbBack !== undefined ? rbBack - knocking.restart : undefined,
    },
  };
}

interface EncryptedResult {
  size_mb: number;
  package_bytes: number;
  raw_ms: number;
  caisson_ms: number;
  ratio_vs_raw: number;
  caisson_max_rss_kb?: number;
  stage_ms?: number;
  raw_runs_ms: number[];
  caisson_runs_ms: number[];
  /** Each encrypted load's history steps (state and time), to see where a load's time went. */
  caisson_runs_steps: Step[][];
}

/**
 * An encrypted package (one recipient: this bench's device key) against the raw path for the
 * same image unencrypted (`tar -xO | docker load; rm -f; run; health`), alternating.
 */
async function benchEncrypted(sizeMb: number, index: number): Promise<EncryptedResult> {
  const label = `enc-${sizeMb}mb`;
  const newRef = `${REPO_REF}:3.0.${index}-${label}`;
  const plainPkg = join(WORK, `web-${label}-plain.edgepkg`);
  const pkg = join(WORK, `web-${label}.edgepkg`);
  const need = sizeMb * MiB * 6 + 1024 * MiB;
  if (freeBytes(WORK) < need) throw new Error(`not enough free disk for the encrypted ${sizeMb} MB case: need ${Math.round(need / MiB)} MiB in ${WORK}`);
  const deviceDir = join(WORK, 'device');
  mkdirSync(deviceDir, { recursive: true });
  writeFileSync(join(deviceDir, 'agent.toml'), '');
  const shown = JSON.parse((await must(process.execPath, [CLI, 'device', 'show', '--json', '--config', join(deviceDir, 'agent.toml')])).stdout) as { public_key: string };

  log(`${label}: building image ${newRef} and its plain and encrypted packages`);
  await buildImage(newRef, `3.0.${index}`, Math.max(0, sizeMb * MiB - 2 * MiB), 'healthy', WORK);
  const build = (out: string, extra: string[]) => must(process.execPath, [CLI, 'package', 'build', '--image', newRef, '--service', 'web', '--service-revision', 'web-v1',
    '--platform', 'linux/amd64', '--version', `3.0.${index}`, '-o', out, ...extra]);
  await build(plainPkg, []);
  await build(pkg, ['--encrypt-to', shown.public_key]);
  await must('docker', ['rmi', newRef]);
  const bytes = statSync(pkg).size;
  const reset = async (file: string) => {
    await quietDocker('rm', '-f', CONTAINER, `${CONTAINER}.caisson-prev`);
    await quietDocker('rmi', newRef);
    await startService(BASE_REF);
    await must('sh', ['-c', 'cat "$1" > /dev/null', 'sh', file]);
    await must('sync', []);
  };
  const raws: number[] = [];
  const loads: Run[] = [];
  const stages: number[] = [];
  const runSteps: Step[][] = [];
  const reps = Number(process.env.BENCH_REPS ?? (sizeMb >= 1000 ? 2 : 3));
  for (let rep = 0; rep < reps; rep++) {
    log(`${label}: raw docker path, plain image (${rep + 1}/${reps})`);
    await reset(plainPkg);
    const r0 = Date.now();
    await must('sh', ['-c', 'tar -xOf "$1" image.tar | docker load', 'sh', plainPkg]);
    await must('docker', ['rm', '-f', CONTAINER]);
    await must('docker', ['run', '-d', '--name', CONTAINER, ...runOptions, newRef]);
    await waitHealthyLikeAPerson(url(PORT), HC.pollSecs * 1000, HC.stableSecs * 1000, HC.timeoutSecs * 1000);
    raws.push(Date.now() - r0);

    log(`${label}: caisson package load of the encrypted package (${rep + 1}/${reps})`);
    await reset(pkg);
    const r = await caisson(['package', 'load', '--yes', '--json', ...common(freshState(`load-${label}`)), '--config', join(deviceDir, 'agent.toml'), pkg], { rss: true });
    const res = JSON.parse(r.stdout) as { outcome: string; steps: Step[] };
    if (res.outcome !== 'committed') throw new Error(`encrypted load said ${res.outcome}: ${r.stdout}\n${r.stderr}`);
    loads.push(r);
    runSteps.push(res.steps.map((x) => ({ state: x.state, at: x.at })));
    const st = span(res.steps, 'received', 'staged');
    if (st !== undefined) stages.push(st);
  }
  await quietDocker('rm', '-f', CONTAINER, `${CONTAINER}.caisson-prev`);
  await quietDocker('rmi', newRef);
  rmSync(pkg, { force: true });
  rmSync(plainPkg, { force: true });
  for (const d of readdirSync(WORK)) if (d.startsWith('state-')) rmSync(join(WORK, d), { recursive: true, force: true });
  const raw = median(raws);
  const ms = median(loads.map((x) => x.ms));
  const rss = Math.max(...loads.map((x) => x.maxRssKb ?? 0)) || undefined;
  return {
    size_mb: sizeMb, package_bytes: bytes, raw_ms: raw, caisson_ms: ms, ratio_vs_raw: ms / raw, caisson_max_rss_kb: rss,
    stage_ms: stages.length ? median(stages) : undefined, raw_runs_ms: raws, caisson_runs_ms: loads.map((x) => x.ms),
    caisson_runs_steps: runSteps,
  };
}

function printEncrypted(results: EncryptedResult[]): void {
  if (!results.length) return;
  const pass = (ok: boolean) => (ok ? ' ok' : ' MISS');
  console.log('\n=== encrypted packages (issue 14): caisson load of image.tar.age vs raw docker load of the plain image ===');
  console.log(table([
    ['size', 'raw docker', 'caisson (encrypted)', 'ratio (goal ≤ 1.20×)', 'stage (decrypt) ', 'peak RSS (goal < 120 MiB)'],
    ...results.map((r) => [
      `${r.size_mb} MiB`, fmtMs(r.raw_ms), fmtMs(r.caisson_ms), `${r.ratio_vs_raw.toFixed(2)}×${pass(r.ratio_vs_raw <= 1.2)}`, fmtMs(r.stage_ms),
      `${r.caisson_max_rss_kb ? (r.caisson_max_rss_kb / 1024).toFixed(1) : '-'}${pass((r.caisson_max_rss_kb ?? Infinity) / 1024 < 120)}`,
    ]),
  ]));
}

interface InboxResult {
  rename_to_received_ms: number[];
  copy_to_received_ms?: number;
  outcomes: string[];
}

/** The agent's inbox: time from the rename into the inbox to the `received` step in history. */
async function benchInbox(pkg: string): Promise<InboxResult> {
  const dir = join(WORK, 'agent');
  rmSync(dir, { recursive: true, force: true });
  for (const d of ['inbox', 'media', 'state', 'staging-src']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'agent.toml'), [
    `media_root = "${join(dir, 'media')}"`,
    `inbox = "${join(dir, 'inbox')}"`,
    `state_dir = "${join(dir, 'state')}"`,
    `services = "${join(WORK, 'services.toml')}"`,
    `trusted_keys_dir = "${join(WORK, 'no-keys')}"`,
    '',
  ].join('\n'));
  await startService(BASE_REF);
  const { spawn } = await import('node:child_process');
  const agent = spawn(process.execPath, [CLI, 'agent', '--config', join(dir, 'agent.toml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  agent.stdout.on('data', (d: Buffer) => (out += d.toString()));
  agent.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => agent.on('close', () => r()));
  const result: InboxResult = { rename_to_received_ms: [], outcomes: [] };
  try {
    const deadline = Date.now() + 30_000;
    while (!out.includes('agent started')) {
      if (Date.now() > deadline) throw new Error(`the agent did not start: ${out.slice(-2000)}`);
      await sleep(50);
    }
    const drop = async (name: string, viaPart: boolean): Promise<{ ms: number; outcome: string }> => {
      const src = join(dir, 'staging-src', `${name}.edgepkg`);
      copyFileSync(pkg, src); // same filesystem as the inbox: the rename below is atomic
      const t0 = Date.now();
      if (viaPart) {
        renameSync(src, join(dir, 'inbox', `${name}.edgepkg.part`));
        await sleep(100); // a copy tool writes NAME.part, then renames it (as docs/agent.md asks)
        const t1 = Date.now();
        renameSync(join(dir, 'inbox', `${name}.edgepkg.part`), join(dir, 'inbox', `${name}.edgepkg`));
        return await waitRecord(name, t1);
      }
      renameSync(src, join(dir, 'inbox', `${name}.edgepkg`));
      return await waitRecord(name, t0);
    };
    const waitRecord = async (name: string, t0: number): Promise<{ ms: number; outcome: string }> => {
      const deadline2 = Date.now() + 120_000;
      for (;;) {
        if (!existsSync(join(dir, 'inbox', `${name}.edgepkg`))) break;
        if (Date.now() > deadline2) throw new Error(`the agent did not process ${name}: ${out.slice(-2000)}`);
        await sleep(50);
      }
      const h = await must(process.execPath, [CLI, 'history', 'list', '--json', '--limit', '1', ...common(join(dir, 'state'))]);
      const rec = (JSON.parse(h.stdout) as Array<{ update_id: string; outcome: string; package_file: string; started_at: string }>)[0]!;
      if (!rec.package_file.endsWith(`${name}.edgepkg`)) throw new Error(`unexpected history record ${JSON.stringify(rec)}`);
      return { ms: Date.parse(rec.started_at) - t0, outcome: rec.outcome };
    };
    for (const [i, viaPart] of [[1, true], [2, true], [3, true]] as const) {
      const r = await drop(`web-inbox-${i}`, viaPart);
      result.rename_to_received_ms.push(r.ms);
      result.outcomes.push(r.outcome);
    }
    // a plain copy (no .part rename): the file is taken once its size is stable over
    // stable_checks checks and it is a whole tar (informative; agent.toml intake.*)
    const r = await drop('web-inbox-copy', false);
    result.copy_to_received_ms = r.ms;
    result.outcomes.push(r.outcome);
  } finally {
    agent.kill('SIGTERM');
    await Promise.race([exited, sleep(15_000)]);
    if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
    await quietDocker('rm', '-f', CONTAINER, `${CONTAINER}.caisson-prev`);
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

async function cleanup(): Promise<void> {
  const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=${BENCH_LABEL}`, '--filter', 'name=^/caisson-bench-'], { encoding: 'utf8' })
    .split('\n').filter(Boolean);
  if (ids.length) await quietDocker('rm', '-f', ...ids);
  const refs = [REPO_REF, `${STACK_REPO}-*`]
    .flatMap((r) => execFileSync('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}', r], { encoding: 'utf8' }).split('\n'))
    .filter(Boolean);
  if (refs.length) await quietDocker('rmi', '-f', ...refs);
}

function machine(): Record<string, string | number> {
  let os = '';
  try {
    os = /PRETTY_NAME="([^"]+)"/.exec(execFileSync('cat', ['/etc/os-release'], { encoding: 'utf8' }))?.[1] ?? '';
  } catch { /* not Linux */ }
  const dockerVersion = execFileSync('docker', ['version', '--format', '{{.Server.Version}}'], { encoding: 'utf8' }).trim();
  const driver = execFileSync('docker', ['info', '--format', '{{.Driver}}'], { encoding: 'utf8' }).trim();
  return { cpus: cpus().length, cpu: cpus()[0]?.model ?? '', mem_mib: Math.round(totalmem() / MiB), os, kernel: release(), node: process.version, docker: dockerVersion, storage_driver: driver };
}

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`no compiled CLI at ${CLI}; run scripts/bench.sh`);
  mkdirSync(WORK, { recursive: true });
  const load = execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).trim();
  log(`machine load before: ${load}`);
  writeFileSync(join(WORK, 'services.toml'), [
    'catalog_version = 1', '', '[[services]]', 'name = "web"', 'service_revision = "web-v1"', 'platform = "linux/amd64"', 'runtime_mode = "docker"', '',
    '[services.docker]', `container_name = "${CONTAINER}"`, `image_reference = "${BASE_REF}"`, '',
    '[services.health_check]', 'kind = "http"', `url = "${url(PORT)}"`,
    `timeout_secs = ${HC.timeoutSecs}`, `poll_interval_secs = ${HC.pollSecs}`, `stable_secs = ${HC.stableSecs}`, '',
    '[services.rollback]', 'automatic = true', '',
  ].join('\n'));
  await cleanup();
  const results: SizeResult[] = [];
  const encrypted: EncryptedResult[] = [];
  let inbox: InboxResult | undefined;
  let stack: StackResult | undefined;
  try {
    log('building the old version and a broken version');
    await buildImage(BASE_REF, '1.0.0', 0, 'healthy', WORK);
    await buildImage(BROKEN_REF, '9.0.0', 0, 'broken', WORK);
    await must(process.execPath, [CLI, 'package', 'build', '--image', BROKEN_REF, '--service', 'web', '--service-revision', 'web-v1',
      '--platform', 'linux/amd64', '--version', '9.0.0', '-o', join(WORK, 'broken.edgepkg')]);
    await must('docker', ['rmi', BROKEN_REF]);
    for (const [i, size] of SIZES.entries()) {
      results.push(await benchSize(size, i));
      printSize(results[results.length - 1]!);
    }
    if (SIZES.length) {
      log('inbox detection (caisson agent)');
      inbox = await benchInbox(join(WORK, `web-${SIZES[0]}mb.edgepkg`));
    }
    if (STACK_MB > 0) {
      stack = await benchStack({ cli: CLI, work: WORK, health: HC, freshState, log }, STACK_MB);
      printStack(stack);
    }
    for (const [i, size] of ENCRYPTED_SIZES.entries()) {
      encrypted.push(await benchEncrypted(size, i));
      printEncrypted(encrypted.slice(-1));
    }
  } finally {
    await cleanup();
    for (const f of readdirSync(WORK)) if (f.endsWith('.edgepkg') || f.startsWith('state-') || f === 'device') rmSync(join(WORK, f), { recursive: true, force: true });
  }
  const summary = printSummary(results, inbox, stack);
  printEncrypted(encrypted);
  const out = {
    measured_at: new Date().toISOString(),
    machine: machine(),
    load_average_before: load,
    health_check: HC,
    sizes: results,
    encrypted,
    inbox,
    stack,
    targets: summary,
  };
  const file = join(REPO, 'bench', 'results', 'latest.json');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  log(`wrote ${file}`);
}

function printSize(r: SizeResult): void {
  const v = r.validate;
  const b = r.package_bytes;
  console.log(`\n=== package ${r.size_mb} MiB (${(b / 1e6).toFixed(1)} MB) ===`);
  console.log(table([
    ['validate / hash', 'time', 'throughput', 'openssl ÷ this'],
    ['openssl dgst -sha256', fmtMs(v.openssl_ms), fmtRate(b, v.openssl_ms), '1.00×'],
    ['sha256sum', fmtMs(v.sha256sum_ms), fmtRate(b, v.sha256sum_ms), ratio(v.openssl_ms, v.sha256sum_ms)],
    ['caisson package validate', fmtMs(v.caisson_ms), fmtRate(b, v.caisson_ms), ratio(v.openssl_ms, v.caisson_ms)],
    ['  (its read+hash+checks only)', fmtMs(v.caisson_in_process_ms), v.caisson_in_process_ms ? fmtRate(b, v.caisson_in_process_ms) : '-', ratio(v.openssl_ms, v.caisson_in_process_ms)],
  ]));
  const l = r.load;
  const p = l.caisson_phases_ms;
  console.log(table([
    ['load', 'time', 'vs raw', 'downtime'],
    ['raw: tar -xO | docker load; rm -f; run; health', fmtMs(l.raw_ms), '1.00×', fmtMs(l.raw_downtime_ms)],
    ['caisson package load --yes', fmtMs(l.caisson_ms), ratio(l.caisson_ms, l.raw_ms), fmtMs(r.downtime.caisson_ms)],
  ]));
  console.log(`  raw phases: load ${fmtMs(l.raw_phases_ms.load)}, replace ${fmtMs(l.raw_phases_ms.replace)}, health ${fmtMs(l.raw_phases_ms.health)}`);
  console.log(`  caisson phases: stage ${fmtMs(p.stage)}, checks ${fmtMs(p.checks)}, import ${fmtMs(p.import)}, plan ${fmtMs(p.plan)}, switch ${fmtMs(p.switch)}, health ${fmtMs(p.health)}, commit ${fmtMs(p.commit)}, process start/exit ${fmtMs(p.process_overhead)}`);
  console.log(`  peak RSS: load ${l.caisson_max_rss_kb ? (l.caisson_max_rss_kb / 1024).toFixed(1) : '-'} MiB, validate ${v.caisson_max_rss_kb ? (v.caisson_max_rss_kb / 1024).toFixed(1) : '-'} MiB`);
  const d = r.downtime;
  const rb = r.rollback;
  console.log(`  downtime ${fmtMs(d.caisson_ms)} = new container start-to-answer ${fmtMs(d.new_container_start_to_answer_knocking_ms)} knocking ${fmtDelta(d.overhead_ms)}; quiet ${fmtMs(d.new_container_start_to_answer_ms)} ${fmtDelta(d.overhead_vs_quiet_ms)} (stop_old → start_new ${fmtMs(d.stop_to_start_new_ms)})`);
  console.log(`  rollback (${rb.outcome}): verdict → old answers ${fmtMs(rb.verdict_to_answer_ms)} = old container start ${fmtMs(rb.old_container_start_ms)} quiet ${fmtDelta(rb.overhead_ms)}; knocking ${fmtMs(rb.old_container_start_knocking_ms)} ${fmtDelta(rb.overhead_vs_knocking_ms)} (verdict → start_old ${fmtMs(rb.verdict_to_start_old_ms)})`);
  console.log('  (start-to-answer twice: quiet = probed once started; knocking = probed from before the start, as clients are: they wait for the engine\'s network to come up)');
}

function printStack(r: StackResult): void {
  console.log(`\n=== stack package: ${r.services} services, ${r.image_mb} MiB of images (${(r.package_bytes / 1e6).toFixed(1)} MB) ===`);
  console.log(table([
    ['load', 'time', 'vs raw'],
    ['raw: tar -xO | docker load; per service: rm -f; run; answers; then stable together', fmtMs(r.raw_ms), '1.00×'],
    ['caisson package load --yes (all or nothing)', fmtMs(r.caisson_ms), ratio(r.caisson_ms, r.raw_ms)],
  ]));
  console.log(`  raw phases: load ${fmtMs(r.raw_phases_ms.load)}, switch ×${r.services} ${fmtMs(r.raw_phases_ms.switch)}, stable together ${fmtMs(r.raw_phases_ms.stable)}; peak RSS of load ${r.caisson_max_rss_kb ? (r.caisson_max_rss_kb / 1024).toFixed(1) : '-'} MiB`);
}

function printSummary(results: SizeResult[], inbox: InboxResult | undefined, stack?: StackResult): Record<string, unknown> {
  if (results.length === 0) return { stack_load_ratio_vs_raw: stack?.ratio_vs_raw };
  const rows = [['target', ...results.map((r) => `${r.size_mb} MiB`), 'goal']];
  const pass = (ok: boolean | undefined) => (ok === undefined ? '' : ok ? ' ok' : ' MISS');
  rows.push(['validate: openssl time ÷ caisson time', ...results.map((r) => `${r.validate.ratio_vs_openssl.toFixed(2)}×${pass(r.validate.ratio_vs_openssl >= 0.8)}`), '≥ 0.80×']);
  rows.push(['  same, read+hash+checks only', ...results.map((r) => (r.validate.in_process_ratio_vs_openssl ? `${r.validate.in_process_ratio_vs_openssl.toFixed(2)}×` : '-')), '(info)']);
  rows.push(['load: caisson ÷ raw docker', ...results.map((r) => `${r.load.ratio_vs_raw.toFixed(2)}×${r.size_mb >= 200 ? pass(r.load.ratio_vs_raw <= 1.1) : ''}`), '≤ 1.10× (≥200 MB)']);
  const rss = results.map((r) => r.load.caisson_max_rss_kb ?? NaN);
  const spread = (Math.max(...rss) - Math.min(...rss)) / 1024;
  rows.push(['peak RSS of load (MiB)', ...rss.map((k) => `${(k / 1024).toFixed(1)}${pass(k / 1024 < 120)}`), '< 120, spread ≤ 20']);
  rows.push(['downtime − new start-to-answer (knocking)', ...results.map((r) => `${fmtMs(r.downtime.overhead_ms)}${pass(r.downtime.overhead_ms !== undefined ? r.downtime.overhead_ms <= 500 : undefined)}`), '≤ 0.5 s']);
  rows.push(['  same, vs quiet start-to-answer', ...results.map((r) => fmtMs(r.downtime.overhead_vs_quiet_ms)), '(info)']);
  rows.push(['rollback − old container start (quiet)', ...results.map((r) => `${fmtMs(r.rollback.overhead_ms)}${pass(r.rollback.overhead_ms !== undefined ? r.rollback.overhead_ms < 3000 : undefined)}`), '< 3 s']);
  rows.push(['  same, vs knocking start', ...results.map((r) => fmtMs(r.rollback.overhead_vs_knocking_ms)), '(info)']);
  if (stack) rows.push(['stack load (3 services): caisson ÷ raw docker', ...results.map(() => ''), `${stack.ratio_vs_raw.toFixed(2)}× (${stack.image_mb} MiB; info)`]);
  console.log('\n=== targets (issue 5) ===');
  console.log(table(rows));
  console.log(`  peak RSS spread across sizes: ${spread.toFixed(1)} MiB${pass(spread <= 20)}`);
  if (inbox) {
    const worst = Math.max(...inbox.rename_to_received_ms);
    console.log(`  inbox: rename → received ${inbox.rename_to_received_ms.map((m) => fmtMs(m)).join(', ')}${pass(worst < 1000)} (goal < 1 s); plain copy → received ${fmtMs(inbox.copy_to_received_ms)} (stable_checks × check_interval; info); outcomes ${inbox.outcomes.join(', ')}`);
  }
  return {
    validate_ratio_vs_openssl: Object.fromEntries(results.map((r) => [r.size_mb, r.validate.ratio_vs_openssl])),
    load_ratio_vs_raw: Object.fromEntries(results.map((r) => [r.size_mb, r.load.ratio_vs_raw])),
    peak_rss_mib: Object.fromEntries(results.map((r) => [r.size_mb, (r.load.caisson_max_rss_kb ?? NaN) / 1024])),
    peak_rss_spread_mib: spread,
    downtime_overhead_ms: Object.fromEntries(results.map((r) => [r.size_mb, r.downtime.overhead_ms])),
    rollback_overhead_ms: Object.fromEntries(results.map((r) => [r.size_mb, r.rollback.overhead_ms])),
    inbox_rename_to_received_ms: inbox?.rename_to_received_ms,
    stack_load_ratio_vs_raw: stack?.ratio_vs_raw,
  };
}

await main();
