// Log lines carry strings from outside: file names on a stick or in the inbox, manifest
// fields, error messages that quote them. A newline in one of them would forge a separate
// log line ("... committed"), a terminal escape sequence would reach whoever runs
// `journalctl` or `tail`. Every string is escaped once, where a line is formed (logger.ts
// for winston, log.ts for the JSON lines on stderr), so no call site can forget it.

// C0 controls, DEL and C1 controls: shown as \xNN
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
// line and paragraph separators and the bidirectional overrides that reorder what is shown
const INVISIBLE = /[\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `s` with every control character as `\xNN` (and separators/bidi overrides as `\uNNNN`). */
export function escapeControl(s: string): string {
  return s
    .replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Strings anywhere inside `value` (objects, arrays) escaped; other values as they are. */
export function escapeDeep<T>(value: T, depth = 0): T {
  if (typeof value === 'string') return escapeControl(value) as T;
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => escapeDeep(v, depth + 1)) as T;
  if (value instanceof Error) return escapeControl(String(value)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[escapeControl(k)] = escapeDeep(v, depth + 1);
  return out as T;
}
