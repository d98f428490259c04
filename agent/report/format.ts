// What the field worker and the operator read: one line per package in
// caisson-result.txt, and a full report per package (JSON for tools, text for people).
// Everything here comes from UpdateResult, which never holds container environment values.
import type { Outcome, UpdateResult } from '../pipeline/types.js';
import type { ServiceResult } from '../model.js';

export const REPORT_FORMAT_VERSION = 1;

export type ResultWord = 'OK' | 'FAILED' | 'ALREADY INSTALLED';

export function resultWord(outcome: Outcome): ResultWord {
  if (outcome === 'committed') return 'OK';
  if (outcome === 'already_installed') return 'ALREADY INSTALLED';
  return 'FAILED';
}

export function isSuccess(outcome: Outcome): boolean {
  return outcome === 'committed' || outcome === 'already_installed';
}

/** Base name of the package file, as the worker sees it on the stick. */
export function packageName(result: UpdateResult): string {
  const parts = result.package_file.split('/');
  return parts[parts.length - 1] || result.package_file;
}

function versions(r: UpdateResult): string {
  const from = r.from_version ?? r.from_image ?? 'none';
  const to = r.to_version ?? r.package_version ?? r.to_image ?? 'unknown';
  return `${from} -> ${to}`;
}

/** A stack's services with their versions: `api 2.0.0 -> 2.1.0, worker 2.0.0 -> 2.1.0`. */
export function stackVersions(r: UpdateResult): string {
  return (r.services ?? []).map((m) => `${m.service} ${m.from_version ?? m.from_image ?? 'none'} -> ${m.to_version ?? m.to_image ?? 'unknown'}`).join(', ');
}

export function nextStep(r: UpdateResult): string {
  const subject = r.stack ? `every service of stack ${r.stack}` : (r.service ?? 'the service');
  switch (r.outcome) {
    case 'committed':
      if (r.stack) return `Done: stack ${r.stack} ${r.package_version ?? ''} runs. Remove the stick.`.replace('  ', ' ');
      return `Done: ${subject} runs ${r.to_version ?? r.package_version ?? 'the new version'}. Remove the stick.`;
    case 'already_installed':
      return 'Nothing to do: this package is already installed. Remove the stick.';
    default: {
      const what =
        r.outcome === 'rolled_back'
          ? r.stack
            ? `${subject} rolled back to its previous version; `
            : `rolled back to ${r.from_version ?? r.from_image ?? 'the previous version'}; `
          : r.outcome === 'rollback_failed'
            ? `ROLLBACK FAILED, ${r.stack ? `stack ${r.stack}` : 'the service'} needs a person; `
            : 'nothing was changed; ';
      const err = r.error ? `${r.error.code}: ${r.error.message}. Next: ${r.error.next}` : 'no error detail recorded';
      return `${what}${err}`;
    }
  }
}

/**
 * One line of caisson-result.txt. No line breaks inside, whatever the messages hold. A
 * stack's line names the stack and every service's versions.
 */
export function resultLine(r: UpdateResult): string {
  const fields = r.stack
    ? [resultWord(r.outcome), packageName(r), `stack ${r.stack} ${r.package_version ?? ''}`.trim(), stackVersions(r) || 'no services', nextStep(r)]
    : [resultWord(r.outcome), packageName(r), `service ${r.service ?? 'unknown'}`, versions(r), nextStep(r)];
  return fields.map(oneLine).join(' | ');
}

/** What one service of a stack ended as, for its own result line. */
function serviceOutcome(r: UpdateResult, m: ServiceResult): string {
  switch (r.outcome) {
    case 'committed':
      return `runs ${m.to_version ?? m.to_image ?? 'the new version'} (stack ${r.stack ?? ''} ${r.package_version ?? ''})`;
    case 'already_installed':
      return 'already installed';
    case 'rollback_failed':
      return m.state === 'restored' ? 'rolled back, runs its previous version again' : m.state === 'pending' ? 'not touched' : 'NOT RESTORED: needs a person';
    default:
      return m.state === 'restored' ? 'rolled back, runs its previous version again' : 'not touched';
  }
}

/** The lines of one result: one for a service package; for a stack, its line and one per service. */
export function resultLines(r: UpdateResult): string[] {
  const lines = [resultLine(r)];
  for (const m of r.stack ? (r.services ?? []) : []) {
    const fields = [resultWord(r.outcome), packageName(r), `service ${m.service}`, `${m.from_version ?? m.from_image ?? 'none'} -> ${m.to_version ?? m.to_image ?? 'unknown'}`, serviceOutcome(r, m)];
    lines.push(fields.map(oneLine).join(' | '));
  }
  return lines;
}

export function resultFileText(results: UpdateResult[], note?: string): string {
  const lines = results.flatMap(resultLines);
  if (note) lines.push(oneLine(note));
  return lines.join('\n') + '\n';
}

export interface ReportMeta {
  /** Filesystem UUID of the stick, when the package came from one. */
  mediumUuid?: string;
  writtenAt: string;
  /** The device's ID and public key, so support staff can hand them to the vendor. */
  device?: { id: string; public_key: string };
}

export function reportJson(r: UpdateResult, meta: ReportMeta): string {
  const doc = {
    report_format: REPORT_FORMAT_VERSION,
    result: resultWord(r.outcome),
    next: nextStep(r),
    medium_uuid: meta.mediumUuid ?? null,
    ...(meta.device ? { device: { id: meta.device.id, public_key: meta.device.public_key } } : {}),
    written_at: meta.writtenAt,
    update: r,
  };
  return JSON.stringify(doc, null, 2) + '\n';
}

export function reportText(r: UpdateResult, meta: ReportMeta): string {
  const rows: [string, string | undefined][] = [
    ['Result', resultWord(r.outcome)],
    ['Outcome', r.outcome],
    ['Package', packageName(r)],
    ['Package version', r.package_version],
    ['Package ID', r.package_id],
    ['Service', r.service],
    ['Stack', r.stack ? `${r.stack} ${r.package_version ?? ''}`.trim() : undefined],
    ['Services', r.stack ? stackVersions(r) : undefined],
    ['From', [r.from_version, r.from_image].filter(Boolean).join(' ') || undefined],
    ['To', [r.to_version, r.to_image].filter(Boolean).join(' ') || undefined],
    ['Source', r.source],
    ['Stick', meta.mediumUuid],
    ['Device ID', meta.device?.id],
    ['Device public key', meta.device?.public_key ? `${meta.device.public_key} (X25519)` : undefined],
    ['Update ID', r.update_id],
    ['Started', r.started_at],
    ['Finished', r.finished_at],
    ['Error', r.error ? `${r.error.code}: ${r.error.message}` : undefined],
    ['Next step', nextStep(r)],
    ['Report written', meta.writtenAt],
  ];
  const out = ['Caisson update report', ''];
  for (const [k, val] of rows) if (val !== undefined && val !== '') out.push(`${k}: ${oneLine(val)}`);
  if (r.services?.length) {
    out.push('', 'Services (in switch order):');
    for (const m of r.services) out.push(`  ${oneLine(m.service)}  ${oneLine(`${m.from_version ?? m.from_image ?? 'none'} -> ${m.to_version ?? m.to_image ?? 'unknown'}`)}  ${m.state}`);
  }
  if (r.steps.length) {
    out.push('', 'Steps:');
    for (const s of r.steps) out.push(`  ${s.at}  ${oneLine(s.state)}${s.detail ? `  ${oneLine(s.detail)}` : ''}`);
  }
  return out.join('\n') + '\n';
}

/** `<time>-<package>` for caisson-reports/, safe on any filesystem a stick may carry. */
export function reportBaseName(r: UpdateResult): string {
  const time = (r.finished_at || r.started_at).replace(/[-:]/g, '').replace(/\.\d+/, '');
  const safeTime = /^[0-9]{8}T[0-9]{6}Z$/.test(time) ? time : 'unknown-time';
  const pkg = packageName(r)
    .replace(/\.edgepkg$/, '')
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/^[.]+/, '_')
    .slice(0, 80);
  return `${safeTime}-${pkg || 'package'}`;
}

function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
}
