// Plain one-line results for people; the same facts as the --json object.
import type { UpdateResult } from '../pipeline/types.js';
import { sentence } from './common.js';

export function resultLine(r: UpdateResult): string {
  if (r.stack) return stackLine(r);
  const svc = r.service ?? '(unknown service)';
  const versions = `${r.from_version ?? r.from_image ?? '?'} → ${r.to_version ?? r.to_image ?? '?'}`;
  const tail = `[${r.update_id}]`;
  switch (r.outcome) {
    case 'committed':
      return `committed: ${svc} ${versions} (${r.to_image}) ${tail}`;
    case 'valid':
      return `valid: ${r.package_file} updates ${svc} to ${r.to_version} (${r.to_image}) ${tail}`;
    case 'already_installed':
      return `already installed: ${svc} ${r.package_version ?? ''} from ${r.package_file}; nothing changed ${tail}`;
    case 'rejected':
      return `rejected: ${r.package_file} ${errorText(r, 'The service was not touched.')} ${tail}`;
    case 'rolled_back':
      return `rolled back: ${svc} runs ${r.from_image ?? 'its previous version'} again ${errorText(r)} ${tail}`;
    case 'rollback_failed':
      return `ROLLBACK FAILED: ${svc} needs a person ${errorText(r)} ${tail}`;
    default:
      return `${r.outcome}: ${svc} ${tail}`;
  }
}

/** A stack: its name and version, then every service's versions in switch order. */
function stackLine(r: UpdateResult): string {
  const stack = `stack ${r.stack} ${r.package_version ?? ''}`.trim();
  const services = (r.services ?? []).map((m) => `${m.service} ${m.from_version ?? m.from_image ?? '?'} → ${m.to_version ?? m.to_image ?? '?'}`).join(', ');
  const tail = `[${r.update_id}]`;
  switch (r.outcome) {
    case 'committed':
      return `committed: ${stack}: ${services} ${tail}`;
    case 'valid':
      return `valid: ${r.package_file} updates ${stack}: ${services} ${tail}`;
    case 'already_installed':
      return `already installed: ${stack} from ${r.package_file}; nothing changed ${tail}`;
    case 'rejected':
      return `rejected: ${r.package_file} (${stack}) ${errorText(r, 'No service was touched.')} ${tail}`;
    case 'rolled_back':
      return `rolled back: every service of ${stack} runs its previous version again (${services}) ${errorText(r)} ${tail}`;
    case 'rollback_failed': {
      const stuck = (r.services ?? []).filter((m) => m.state !== 'restored' && m.state !== 'pending').map((m) => m.service);
      return `ROLLBACK FAILED: ${stack} needs a person${stuck.length ? ` (not restored: ${stuck.join(', ')})` : ''} ${errorText(r)} ${tail}`;
    }
    default:
      return `${r.outcome}: ${stack} ${tail}`;
  }
}

/** "(code): message. [Then.] Next: what to do." — whole sentences, each said once. */
function errorText(r: UpdateResult, then?: string): string {
  if (!r.error) return then ?? '';
  const parts = [`(${r.error.code}): ${sentence(r.error.message)}`];
  if (then) parts.push(then);
  parts.push(`Next: ${sentence(r.error.next)}`);
  return parts.join(' ');
}


/** Fixed-width columns, for list commands. */
export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}
