// The agent's log, as a small interface so that the CLI can hand in its logger and tests
// can collect lines. The default writes one JSON object per line to stderr (journald
// keeps it when the agent runs under systemd). Strings are escaped first (log/escape.ts):
// a newline or a terminal escape from a file name never reaches journald raw.
import { escapeControl, escapeDeep } from '../log/escape.js';
export interface AgentLog {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

export function stderrLog(): AgentLog {
  const write = (level: string, message: string, meta?: Record<string, unknown>) =>
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, message: escapeControl(message), ...escapeDeep(meta) }) + '\n');
  return {
    info: (m, meta) => write('info', m, meta),
    warn: (m, meta) => write('warn', m, meta),
    error: (m, meta) => write('error', m, meta),
  };
}

export const silentLog: AgentLog = { info() {}, warn() {}, error() {} };
