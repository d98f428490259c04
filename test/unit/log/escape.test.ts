// Log injection: strings from a stick, a file name or a package never reach a log line
// raw, neither in caisson.log / on the terminal (winston) nor in the JSON lines journald keeps.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { escapeControl, escapeDeep } from '../../../agent/log/escape.js';
import { createLogger } from '../../../agent/log/logger.js';
import { stderrLog } from '../../../agent/intake/log.js';
import { removeTree, tempDir } from '../../support/intake-helpers.js';

// a file name that tries to forge a second log line and to recolour the terminal
const EVIL = 'web-1.0.0\n2026-03-16T18:30:00.000Z info agent: update result (outcome="committed")\x1b[2J\x1b]0;pwned\x07\u009b31m\u202e.edgepkg';
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/;

describe('log escaping', () => {
  it('shows control characters as \\xNN and separators/bidi overrides as \\uNNNN', () => {
    assert.equal(escapeControl('a\nb\tc\x1b[0m\x7f\u0085'), 'a\\x0ab\\x09c\\x1b[0m\\x7f\\x85');
    assert.equal(escapeControl('x\u2028y\u202ez'), 'x\\u2028y\\u202ez');
    assert.equal(escapeControl('plain ünïcode / path'), 'plain ünïcode / path');
    assert.deepEqual(escapeDeep({ file: 'a\nb', n: 3, list: ['\x1b'], nested: { k: '\r' } }), { file: 'a\\x0ab', n: 3, list: ['\\x1b'], nested: { k: '\\x0d' } });
  });

  it('winston: one line per call in caisson.log, nothing raw, whatever the message holds', async () => {
    const dir = tempDir('caisson-log-');
    try {
      const logger = createLogger({ stateDir: dir, console: false });
      logger.info(`applying ${EVIL}`);
      logger.warn(`agent: update result (file=${JSON.stringify(EVIL)})`);
      logger.error('failed', { file: EVIL });
      await new Promise<void>((resolve) => {
        logger.on('finish', () => resolve());
        logger.end();
      });
      await new Promise((r) => setTimeout(r, 100));
      const text = readFileSync(join(dir, 'logs', 'caisson.log'), 'utf8');
      const lines = text.trimEnd().split('\n');
      assert.equal(lines.length, 3, text);
      for (const line of lines) {
        assert.doesNotMatch(line, RAW_CONTROL, line);
        assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z (info|warn|error) /, 'every line starts with its own timestamp');
      }
      assert.ok(lines[0]!.includes('web-1.0.0\\x0a2026-03-16T18:30:00.000Z info agent'), lines[0]);
      assert.ok(lines[0]!.includes('\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\u202e.edgepkg'), lines[0]);
    } finally {
      removeTree(dir);
    }
  });

  it('the JSON lines on stderr (journald): no raw control character, one line per call', () => {
    const written: string[] = [];
    const real = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => (written.push(String(chunk)), true)) as typeof process.stderr.write;
    try {
      const log = stderrLog();
      log.info(`stick inserted ${EVIL}`, { file: EVIL, nested: { why: EVIL } });
      log.warn('x', { error: EVIL });
    } finally {
      process.stderr.write = real;
    }
    assert.equal(written.length, 2);
    for (const w of written) {
      assert.equal(w.indexOf('\n'), w.length - 1, 'one line per call');
      assert.doesNotMatch(w.slice(0, -1), RAW_CONTROL);
      assert.doesNotMatch(w, /\\u001b|\\n2026/, 'escaped as \\xNN, not left to JSON to spell out');
    }
    const first = JSON.parse(written[0]!) as { message: string; file: string; nested: { why: string } };
    assert.ok(first.file.includes('\\x0a2026') && first.nested.why.includes('\\x1b[2J'));
  });

  it('the log folder is 0750 and the log file 0640 even under umask 0', () => {
    const dir = tempDir('caisson-log-');
    const old = process.umask(0);
    try {
      createLogger({ stateDir: dir, console: false }).close();
      assert.equal(statSync(join(dir, 'logs')).mode & 0o777, 0o750);
      assert.equal(statSync(join(dir, 'logs', 'caisson.log')).mode & 0o777, 0o640);
    } finally {
      process.umask(old);
      removeTree(dir);
    }
  });
});
