// caisson recover: finish or reverse what a crash left open, by hand (the agent does it at start).
import type { Command } from 'commander';
import { EXIT_CODES } from './exit-codes.js';
import { emit, runCommand, withCommonOptions, type CommonOptions } from './common.js';
import { resultLine } from './format.js';
import { openAndRecover } from './package-commands.js';

export function addRecoverCommand(program: Command): void {
  withCommonOptions(program.command('recover').description('finish or reverse updates a crash left open, and say what was done'))
    .action((opts: CommonOptions) =>
      runCommand(opts, async () => {
        const { pipeline, recovered } = await openAndRecover(opts, 'recover', false);
        pipeline.close();
        const lines = recovered.map((r) => `recovered ${resultLine(r)}`);
        emit(opts, { recovered }, lines.length ? lines.join('\n') : 'nothing to recover: no update was left open');
        return recovered.some((r) => r.outcome === 'rollback_failed') ? EXIT_CODES.rollback_failed : 0;
      }),
    );
}
