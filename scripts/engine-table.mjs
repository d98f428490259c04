// Write the engine compatibility table into docs/runtime.md from the results that
// scripts/engine-matrix.sh leaves (one <engine>.json per engine), between the markers
// <!-- engine-matrix:start --> and <!-- engine-matrix:end -->. Engines without a result file
// keep their row as it was.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, doc] = process.argv.slice(2);
const START = '<!-- engine-matrix:start -->';
const END = '<!-- engine-matrix:end -->';

const text = readFileSync(doc, 'utf8');
const a = text.indexOf(START);
const b = text.indexOf(END);
if (a < 0 || b < a) throw new Error(`${doc} has no ${START} … ${END} section`);

const rows = new Map();
// the rows already there, keyed by engine name (first cell)
for (const line of text.slice(a + START.length, b).split('\n')) {
  const m = /^\| `([^`]+)` \|/.exec(line);
  if (m) rows.set(m[1], line);
}
for (const f of readdirSync(dir).filter((n) => n.endsWith('.json') && !n.endsWith('.mocha.json'))) {
  const d = JSON.parse(readFileSync(join(dir, f), 'utf8'));
  const run = d.suites.map((s) => `${s.suite}${s.peer ? ` (with ${s.peer})` : ''} ${s.passes}/${s.tests}${s.exit ? ' **failed**' : ''}`).join(', ');
  const ok = d.suites.length > 0 && d.suites.every((s) => s.exit === 0);
  rows.set(d.engine, `| \`${d.engine}\` | ${d.version} | ${d.store} | ${d.compose} | ${run} | ${ok ? 'pass' : '**fail**'} | ${d.date} |`);
}
const order = ['debian12', 'docker28', 'docker28-containerd'];
const keys = [...rows.keys()].sort((x, y) => (order.indexOf(x) + 1 || 99) - (order.indexOf(y) + 1 || 99));
const table = [
  '| Engine (`with-engine.sh` name) | Docker Engine | Image store | Compose | Suites run (passed/tests) | Result | Run on |',
  '|---|---|---|---|---|---|---|',
  ...keys.map((k) => rows.get(k)),
].join('\n');
writeFileSync(doc, `${text.slice(0, a + START.length)}\n${table}\n${text.slice(b)}`);
