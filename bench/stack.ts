// The stack case of `npm run bench`: one stack package of three services (about 200 MB of
// images together) against the raw docker commands a person would type for the same three
// (one `docker load` of the same archive, then for each service in order: rm -f, run, wait
// until it answers; then all three answering for the stable window together, as caisson
// checks them). Both start from the old versions running and the new
// images absent. Everything is named caisson-bench-stack-* (label caisson.bench=1) and
// uses ports 18410-18412 on 127.0.0.1.
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MiB, buildImage, median, must, run, sleep, waitAnswer, waitHealthyLikeAPerson, type Run } from './lib.js';

export const STACK_REPO = 'caisson-bench-stack';
const SERVICES = ['db', 'api', 'worker'];
const PORT0 = 18410;
const containerOf = (s: string) => `caisson-bench-stack-${s}`;
const portOf = (i: number) => PORT0 + i;
const urlOf = (i: number) => `http://127.0.0.1:${portOf(i)}/health`;
const oldRef = (s: string) => `${STACK_REPO}-${s}:1.0.0`;
const newRef = (s: string) => `${STACK_REPO}-${s}:2.0.0`;
const runOptions = (i: number) => ['--label', 'caisson.bench=1', '--restart', 'unless-stopped', '-p', `127.0.0.1:${portOf(i)}:8080`];

export interface StackBenchDeps {
  cli: string;
  work: string;
  health: { timeoutSecs: number; pollSecs: number; stableSecs: number };
  /** A fresh state folder for one caisson run. */
  freshState: (label: string) => string;
  log: (s: string) => void;
}

export interface StackResult {
  services: number;
  image_mb: number;
  package_bytes: number;
  raw_ms: number;
  caisson_ms: number;
  ratio_vs_raw: number;
  raw_runs_ms: number[];
  caisson_runs_ms: number[];
  caisson_max_rss_kb?: number;
  raw_phases_ms: Record<string, number>;
}

const quiet = (...args: string[]) => run('docker', args);

export async function benchStack(deps: StackBenchDeps, totalMb = 200): Promise<StackResult> {
  const { cli, work, health, log } = deps;
  const catalog = join(work, 'stack-services.toml');
  writeFileSync(catalog, ['catalog_version = 1', '', ...SERVICES.flatMap((s, i) => [
    '[[services]]', `name = "${s}"`, `service_revision = "${s}-v1"`, 'platform = "linux/amd64"', 'runtime_mode = "docker"',
    ...(i > 0 ? [`depends_on = ["${SERVICES[i - 1]}"]`] : []), '',
    '[services.docker]', `container_name = "${containerOf(s)}"`, '',
    '[services.health_check]', 'kind = "http"', `url = "${urlOf(i)}"`,
    `timeout_secs = ${health.timeoutSecs}`, `poll_interval_secs = ${health.pollSecs}`, `stable_secs = ${health.stableSecs}`, '',
  ])].join('\n'));
  const common = (state: string) => ['--services', catalog, '--state-dir', state, '--trusted-keys', join(work, 'no-keys')];

  log(`stack: building 3 old and 3 new images (${totalMb} MiB of random padding in the new ones together) and the stack package`);
  const perImage = Math.floor((totalMb * MiB) / SERVICES.length) - 2 * MiB;
  for (const s of SERVICES) {
    await buildImage(oldRef(s), '1.0.0', 0, 'healthy', work);
    await buildImage(newRef(s), '2.0.0', Math.max(0, perImage), 'healthy', work);
  }
  const pkg = join(work, 'stack-2.0.0.edgepkg');
  await must(process.execPath, [cli, 'package', 'build', '--stack', 'bench', ...SERVICES.flatMap((s) => ['--member', `${s},${s}-v1,${newRef(s)}`]),
    '--platform', 'linux/amd64', '--version', '2.0.0', '-o', pkg]);
  for (const s of SERVICES) await must('docker', ['rmi', newRef(s)]);
  const bytes = statSync(pkg).size;

  const resetToOld = async () => {
    for (const [i, s] of SERVICES.entries()) {
      await quiet('rm', '-f', containerOf(s), `${containerOf(s)}.caisson-prev`);
      await quiet('rmi', newRef(s));
      await must('docker', ['run', '-d', '--name', containerOf(s), ...runOptions(i), oldRef(s)]);
      await waitAnswer(urlOf(i), 30_000);
    }
    await must('sh', ['-c', 'cat "$1" > /dev/null', 'sh', pkg]); // both start from a warm page cache
    await must('sync', []);
  };

  const reps = Number(process.env.BENCH_REPS ?? 3);
  const raws: Array<{ ms: number; phases: Record<string, number> }> = [];
  const loads: Run[] = [];
  try {
    for (let rep = 0; rep < reps; rep++) {
      log(`stack: raw docker path for the three (${rep + 1}/${reps})`);
      await resetToOld();
      await sleep(200);
      const r0 = Date.now();
      await must('sh', ['-c', 'tar -xOf "$1" image.tar | docker load', 'sh', pkg]);
      const r1 = Date.now();
      // as caisson does: each answers before the next is switched, then all three stay
      // healthy for the stable window together
      for (const [i, s] of SERVICES.entries()) {
        await must('docker', ['rm', '-f', containerOf(s)]);
        await must('docker', ['run', '-d', '--name', containerOf(s), ...runOptions(i), newRef(s)]);
        await waitAnswer(urlOf(i), health.timeoutSecs * 1000, health.pollSecs * 1000);
      }
      const r2 = Date.now();
      await Promise.all(SERVICES.map((_, i) => waitHealthyLikeAPerson(urlOf(i), health.pollSecs * 1000, health.stableSecs * 1000, health.timeoutSecs * 1000)));
      const r3 = Date.now();
      raws.push({ ms: r3 - r0, phases: { load: r1 - r0, switch: r2 - r1, stable: r3 - r2 } });

      log(`stack: caisson package load (${rep + 1}/${reps})`);
      await resetToOld();
      await sleep(200);
      const l = await run(process.execPath, [cli, 'package', 'load', '--yes', '--json', ...common(deps.freshState('stack')), pkg], { rss: true });
      const res = JSON.parse(l.stdout) as { outcome: string };
      if (res.outcome !== 'committed') throw new Error(`stack load said ${res.outcome}: ${l.stdout}\n${l.stderr}`);
      loads.push(l);
    }
  } finally {
    for (const s of SERVICES) await quiet('rm', '-f', containerOf(s), `${containerOf(s)}.caisson-prev`);
    for (const s of SERVICES) await quiet('rmi', '-f', newRef(s), oldRef(s));
    rmSync(pkg, { force: true });
  }
  const raw = median(raws.map((r) => r.ms));
  const caisson = median(loads.map((l) => l.ms));
  const mid = [...raws].sort((a, b) => a.ms - b.ms)[Math.floor((raws.length - 1) / 2)]!;
  const rss = Math.max(...loads.map((l) => l.maxRssKb ?? 0));
  return {
    services: SERVICES.length,
    image_mb: totalMb,
    package_bytes: bytes,
    raw_ms: raw,
    caisson_ms: caisson,
    ratio_vs_raw: caisson / raw,
    raw_runs_ms: raws.map((r) => r.ms),
    caisson_runs_ms: loads.map((l) => l.ms),
    ...(rss ? { caisson_max_rss_kb: rss } : {}),
    raw_phases_ms: mid.phases,
  };
}
