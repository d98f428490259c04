// One readable line per step on the terminal (stderr, so --json output stays clean on
// stdout) and the same lines, with timestamps, in <state-dir>/logs/caisson.log (folder
// 0750, file 0640 whatever the umask: the log names services, packages and sticks).
// Every string in a line is escaped first (escape.ts): one call, one line, nothing raw.
import { closeSync, mkdirSync, openSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import winston from 'winston';
import { STATE_DIR_MODE as LOG_DIR_MODE, STATE_FILE_MODE as LOG_FILE_MODE, tighten } from '../perms.js';
import { escapeControl } from './escape.js';

/** Control characters in the message and in every string field become \xNN. */
export const escapeFormat = winston.format((info) => {
  const fields = info as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    if (typeof value === 'string') fields[key] = escapeControl(value);
  }
  if (typeof info.message !== 'string') info.message = escapeControl(String(info.message));
  return info;
});

export type Logger = winston.Logger;

export interface LoggerOptions {
  stateDir?: string;
  /** 'silent' for tests and --quiet. */
  level?: string;
  console?: boolean;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const transports: winston.transport[] = [];
  if (opts.console !== false) {
    transports.push(
      new winston.transports.Console({
        stderrLevels: ['error', 'warn', 'info', 'debug'],
        format: winston.format.printf(({ level, message }) => (level === 'info' ? `${message}` : `${level}: ${message}`)),
      }),
    );
  }
  if (opts.stateDir) {
    const dir = join(opts.stateDir, 'logs');
    try {
      const file = prepareLogFile(dir, 'caisson.log');
      transports.push(
        new winston.transports.File({
          filename: file,
          // rotated files are created by winston with this mode (the umask can only take away)
          options: { flags: 'a', mode: LOG_FILE_MODE },
          maxsize: 5 * 1024 * 1024,
          maxFiles: 3,
          tailable: true,
          format: winston.format.combine(
            winston.format.timestamp(),
            winston.format.printf(({ timestamp, level, message }) => `${timestamp} ${level} ${message}`),
          ),
        }),
      );
    } catch {
      // a read-only state dir still lets the command run; the terminal has the lines
    }
  }
  if (transports.length === 0) transports.push(new winston.transports.Console({ silent: true }));
  return winston.createLogger({ level: opts.level ?? 'info', format: escapeFormat(), transports });
}

/** The log folder (0750) and file (0640), created or tightened before winston opens it. */
function prepareLogFile(dir: string, name: string): string {
  mkdirSync(dir, { recursive: true, mode: LOG_DIR_MODE });
  tighten(dir, LOG_DIR_MODE);
  const file = join(dir, name);
  const fd = openSync(file, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW, LOG_FILE_MODE);
  closeSync(fd);
  tighten(file, LOG_FILE_MODE);
  return file;
}

export const silentLogger = (): Logger => winston.createLogger({ transports: [new winston.transports.Console({ silent: true })] });
