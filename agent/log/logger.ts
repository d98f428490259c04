// One readable line per step on the terminal (stderr, so --json output stays clean on
// stdout) and the same lines, with timestamps, in <state-dir>/logs/caisson.log.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import winston from 'winston';

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
      mkdirSync(dir, { recursive: true });
      transports.push(
        new winston.transports.File({
          filename: join(dir, 'caisson.log'),
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
  return winston.createLogger({ level: opts.level ?? 'info', transports });
}

export const silentLogger = (): Logger => winston.createLogger({ transports: [new winston.transports.Console({ silent: true })] });
