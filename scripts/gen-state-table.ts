// Print the state table of docs/architecture.md from agent/pipeline/states.ts
// (run: npx tsx scripts/gen-state-table.ts; test/unit/architecture-doc.test.ts checks the doc holds it).
import { STATE_TABLE, STATES } from '../agent/pipeline/states.js';

export function stateTableMarkdown(): string {
  const rows = STATES.map((s) => {
    const spec = STATE_TABLE[s];
    return `| \`${s}\` | ${spec.announces} | ${spec.next.map((n) => `\`${n}\``).join(', ')} | ${spec.recovery} |`;
  });
  return ['| state | saved before (announces) | may go to | recovery |', '| --- | --- | --- | --- |', ...rows].join('\n') + '\n';
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) process.stdout.write(stateTableMarkdown());
