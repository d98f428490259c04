// mocha's spec reporter plus one plain closing line, "N passed, N failed", that CI reads.
const Mocha = require('mocha');

class CaissonReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once('end', () => {
      const s = runner.stats;
      const skipped = s.pending ? `, ${s.pending} skipped` : '';
      process.stdout.write(`${s.passes} passed, ${s.failures} failed${skipped}\n`);
    });
  }
}

module.exports = CaissonReporter;
