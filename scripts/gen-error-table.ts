// Print the error-code table of docs/cli.md from agent/errors.ts (run: npx tsx scripts/gen-error-table.ts).
import { ERROR_CODES } from '../agent/errors.js';

const rows = Object.entries(ERROR_CODES).map(([code, info]) => `| \`${code}\` | ${info.next.replace(/\|/g, '\\|')} |`);
process.stdout.write(['| code | what to do next |', '| --- | --- |', ...rows].join('\n') + '\n');
