// The closing summary of scripts/test.sh: for the typecheck, the restart test, each lane and stage 2, the
// counts, the slowest files and every failure in full, then a total and the wall time of
// each stage. Exits 1 when anything failed (or a lane ended without its counts).
//   node scripts/test-summary.mjs OUT_DIR NPM_CI_S BUILD_S TYPECHECK_S LANES_S TOTAL_S
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const [out, npmCi, build, typecheck, lanes, total] = process.argv.slice(2);
let passed = 0;
let failed = 0;
let ok = true;

function status(name) {
  const file = join(out, `${name}.status`);
  if (!existsSync(file)) return { rc: NaN, secs: NaN };
  const [rc, secs] = readFileSync(file, 'utf8').trim().split(' ').map(Number);
  return { rc, secs };
}

/** One mocha run's log, written with test/support/reporter.cjs. */
function mochaLane(name, title) {
  const { rc, secs } = status(name);
  const lines = existsSync(join(out, `${name}.log`)) ? readFileSync(join(out, `${name}.log`), 'utf8').split('\n') : [];
  const countsAt = lines.findLastIndex((l) => /^\d+ passed, \d+ failed/.test(l));
  if (countsAt < 0) {
    ok = false;
    console.log(`\n== ${title}: exit ${rc} after ${secs} s, no counts (see ${join(out, `${name}.log`)}); its last lines:`);
    console.log(lines.slice(-30).join('\n'));
    return secs;
  }
  const [, p, f] = /^(\d+) passed, (\d+) failed/.exec(lines[countsAt]);
  passed += Number(p);
  failed += Number(f);
  if (rc !== 0 || Number(f) > 0) ok = false;
  console.log(`\n== ${title}: ${lines[countsAt]} in ${secs} s (exit ${rc})`);
  const slowAt = lines.lastIndexOf('slowest test files:');
  if (slowAt >= 0) console.log(lines.slice(slowAt, Math.min(slowAt + 6, countsAt)).join('\n'));
  const failAt = lines.findLastIndex((l) => /^\s+\d+ failing/.test(l));
  if (failAt >= 0) console.log(lines.slice(failAt, slowAt >= 0 ? slowAt : countsAt).join('\n'));
  return secs;
}

/** Stage 2: engine-matrix.sh's log, and the mocha JSON of each suite it ran this time. */
function stage2() {
  const { rc, secs } = status('stage2');
  if (Number.isNaN(rc)) return undefined;
  const log = readFileSync(join(out, 'stage2.log'), 'utf8').split('\n');
  let p = 0;
  let f = 0;
  const failures = [];
  for (const line of log) {
    const m = /^engine-matrix: (\S+) (\S+): exit (\d+) in (\d+)s/.exec(line);
    if (!m) continue;
    const report = join('test-results', 'engines', `${m[1]}-${m[2]}.mocha.json`);
    let doc;
    try {
      doc = JSON.parse(readFileSync(report, 'utf8'));
    } catch {
      failures.push(`${m[1]} ${m[2]}: exit ${m[3]}, no results (see test-results/engines/${m[1]}-${m[2]}.log)`);
      f += 1;
      continue;
    }
    p += doc.stats.passes;
    f += doc.stats.failures;
    for (const t of doc.failures) failures.push(`${m[1]} ${m[2]}: ${t.fullTitle}\n${t.err?.stack ?? t.err?.message ?? ''}`);
    if (Number(m[3]) !== 0 && doc.stats.failures === 0) failures.push(`${m[1]} ${m[2]}: exit ${m[3]} (see test-results/engines/${m[1]}-${m[2]}.log)`);
  }
  passed += p;
  failed += f;
  if (rc !== 0 || f > 0 || failures.length > 0) ok = false;
  console.log(`\n== stage 2 (engine matrix): ${p} passed, ${f} failed in ${secs} s (exit ${rc})`);
  console.log(log.filter((l) => /^engine-matrix: .*(exit|provisioning)|: provisioning \d+s;/.test(l)).join('\n'));
  for (const x of failures) console.log(`\n${x}`);
  return secs;
}

const typecheckRc = status('typecheck').rc;
if (typecheckRc !== 0) {
  ok = false;
  console.log(`\n== the typecheck failed (exit ${typecheckRc}, see ${join(out, 'typecheck.log')})`);
}
const laneTimes = [`dockerd restart ${mochaLane('restart', 'dockerd restart (debian12-dind, an engine of its own)')} s`];
laneTimes.push(`unit ${mochaLane('unit', 'unit tests (lane 1, first; no engine reachable)')} s`);
const laneNames = readdirSync(out).filter((n) => /^lane\d+\.status$/.test(n)).map((n) => n.replace('.status', '')).sort();
for (const name of laneNames) laneTimes.push(`${name.replace('lane', 'lane ')} ${mochaLane(name, `${name.replace('lane', 'lane ')}${name === 'lane1' ? ' (this machine\'s engine)' : ' (debian12-dind)'}`)} s`);
if (existsSync(join(out, 'device.status'))) laneTimes.push(`device ${mochaLane('device', 'the device test (lane 1, after it; this machine\'s engine)')} s`);
const s2 = stage2();
if (s2 !== undefined) laneTimes.push(`stage 2 ${s2} s`);

console.log(`\ncaisson tests: ${passed} passed, ${failed} failed`);
console.log(`caisson tests: npm ci ${npmCi} s, build ${build} s, side by side ${lanes} s: typecheck ${typecheck} s, ${laneTimes.join(', ')}; whole run ${total} s`);
process.exit(ok ? 0 : 1);
