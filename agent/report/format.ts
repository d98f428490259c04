// What the field worker and the operator read: one line per package in
// caisson-result.txt, and a full report per package (JSON for tools, text for people).
// Everything here comes from UpdateResult, which never holds container environment values.
import type { Outcome, UpdateResult } from '../pipeline/types.js';

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

export function nextStep(r: UpdateResult): string {
  switch (r.outcome) {
    case 'committed':
      return `Done: ${r.service ?? 'the service'} runs ${r.to_version ?? r.package_version ?? 'the new version'}. Remove the stick.`;
    case 'already_installed':
      return 'Nothing to do: this package is already installed. Remove the stick.';
    default: {
      const what =
        r.outcome === 'rolled_back'
          ? `rolled back to ${r.from_version ?? r.from_image ?? 'the previous version'}; `
          : r.outcome === 'rollback_failed'
            ? 'ROLLBACK FAILED, the service needs a person; '
            : 'nothing was changed; ';
      const err = r.error ? `${r.error.code}: ${r.error.message}. Next: ${r.error.next}` : 'no error detail recorded';
      return `${what}${err}`;
    }
  }
}

/** One line of caisson-result.txt. No line breaks inside, whatever the messages hold. */
export function resultLine(r: UpdateResult): string {
  const fields = [resultWord(r.outcome), packageName(r), `service ${r.service ?? 'unknown'}`, versions(r), nextStep(r)];
  return fields.map(oneLine).join(' | ');
}

export function resultFileText(results: UpdateResult[], note?: string): string {
  const lines = results.map(resultLine);
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
