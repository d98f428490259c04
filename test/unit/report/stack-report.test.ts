// What a stack update looks like to the field worker and the operator: the stick's result
// file has one line for the stack and one per service; the report and the CLI line name
// every service; --json carries the per-service array. Results come from real stack runs
// on the fake engine.
import assert from 'node:assert/strict';
import { assertIncludes } from '../../support/assert.js';
import { resultFileText, resultLines, reportText } from '../../../agent/report/format.js';
import { resultLine as cliLine } from '../../../agent/cli/format.js';
import { PipelineHarness, STACK_SERVICES_TOML } from '../../support/pipeline-harness.js';
import { stackSetup, type StackSetup } from '../../support/stack-fixture.js';

describe('stack results: stick lines, report, CLI line', function () {
  let s: StackSetup;
  let h: PipelineHarness;
  beforeEach(async () => {
    s = stackSetup(new PipelineHarness(STACK_SERVICES_TOML));
    h = s.h;
    // the device had 2.0.0 of each, installed by an earlier stack
    const first = h.stackPackage({ name: 'shop', version: '2.0.0', services: (['api', 'front', 'worker'] as const).map((n) => s.image(n, { version: '2.0.0', reference: `acme/${n}:2.0.1` })) });
    assert.equal((await h.run(first)).outcome, 'committed');
  });
  afterEach(() => h.close());

  it('committed: one OK line for the stack with every service, then one per service', async () => {
    const r = await h.run(s.pkg());
    const lines = resultLines({ ...r, package_file: '/media/x/stack-2.1.0.edgepkg' });
    assert.deepEqual(lines, [
      'OK | stack-2.1.0.edgepkg | stack shop 2.1.0 | api 2.0.0 -> 2.1.0, front 2.0.0 -> 2.1.0, worker 2.0.0 -> 2.1.0 | Done: stack shop 2.1.0 runs. Remove the stick.',
      'OK | stack-2.1.0.edgepkg | service api | 2.0.0 -> 2.1.0 | runs 2.1.0 (stack shop 2.1.0)',
      'OK | stack-2.1.0.edgepkg | service front | 2.0.0 -> 2.1.0 | runs 2.1.0 (stack shop 2.1.0)',
      'OK | stack-2.1.0.edgepkg | service worker | 2.0.0 -> 2.1.0 | runs 2.1.0 (stack shop 2.1.0)',
    ]);
    assert.equal(resultFileText([r]).trimEnd().split('\n').length, 4);
    assert.match(cliLine(r), /^committed: stack shop 2\.1\.0: api 2\.0\.0 → 2\.1\.0, front 2\.0\.0 → 2\.1\.0, worker 2\.0\.0 → 2\.1\.0 \[u-/);
    const text = reportText(r, { writtenAt: '2026-03-16T18:31:00Z' });
    assertIncludes(text, 'Stack: shop 2.1.0');
    assert.match(text, /Services \(in switch order\):\n {2}api {2}2\.0\.0 -> 2\.1\.0 {2}committed\n {2}front/);
    assertIncludes(text, 'switching.front.compose_up');
    // --json: the per-service array
    assert.deepEqual(JSON.parse(JSON.stringify(r)).services.map((m: { service: string; from_version: string; to_version: string }) => [m.service, m.from_version, m.to_version]), [
      ['api', '2.0.0', '2.1.0'],
      ['front', '2.0.0', '2.1.0'],
      ['worker', '2.0.0', '2.1.0'],
    ]);
  });

  it('rolled back: FAILED for the stack and for each service, each back on its previous version', async () => {
    const r = await h.run(s.pkg({ worker: { behaviour: 'exits' } }));
    const lines = resultLines(r);
    assert.match(lines[0], /^FAILED \| .* \| stack shop 2\.1\.0 \| api 2\.0\.0 -> 2\.1\.0, front 2\.0\.0 -> 2\.1\.0, worker 2\.0\.0 -> 2\.1\.0 \| every service of stack shop rolled back to its previous version; service\.start_failed: /);
    assert.deepEqual(lines.slice(1), ['api', 'front', 'worker'].map((n) => `FAILED | ${r.package_file.split('/').pop()} | service ${n} | 2.0.0 -> 2.1.0 | rolled back, runs its previous version again`));
    assert.match(cliLine(r), /^rolled back: every service of stack shop 2\.1\.0 runs its previous version again/);
  });

  it('rejected: every service line says it was not touched', async () => {
    const r = await h.run(s.pkg({ front: { broken: true } }));
    assert.deepEqual(resultLines(r).slice(1).map((l) => l.split(' | ').pop()), ['not touched', 'not touched', 'not touched']);
    assert.match(cliLine(r), /^rejected: .* \(stack shop 2\.1\.0\) \(docker\.load_failed\): .* No service was touched\./);
  });
});
