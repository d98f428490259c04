// mocha's spec reporter plus a closing summary that CI reads: the slowest test files, then
// one plain line, "N passed, N failed".
const Mocha = require('mocha');
const path = require('node:path');

class CaissonReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const perFile = new Map();
    const addTime = (file, ms) => {
      if (!file) return;
      const rel = path.relative(process.cwd(), file);
      perFile.set(rel, (perFile.get(rel) ?? 0) + ms);
    };
    // Test bodies and hooks both count: a slow before() is as slow as a slow test.
    runner.on('test end', (test) => addTime(test.file, test.duration ?? 0));
    runner.on('hook end', (hook) => addTime(hook.file, hook.duration ?? 0));
    runner.once('end', () => {
      const slowest = [...perFile.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15);
      if (slowest.length > 1) {
        process.stdout.write('\nslowest test files:\n');
        for (const [file, ms] of slowest) process.stdout.write(`  ${(ms / 1000).toFixed(1).padStart(7)} s  ${file}\n`);
      }
      const s = runner.stats;
      const skipped = s.pending ? `, ${s.pending} skipped` : '';
      process.stdout.write(`${s.passes} passed, ${s.failures} failed${skipped}\n`);
    });
  }
}

module.exports = CaissonReporter;
