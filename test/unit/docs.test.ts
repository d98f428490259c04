import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CODES } from '../../agent/errors.js';
import { EXIT_CODES } from '../../agent/cli/exit-codes.js';

describe('docs/cli.md', function () {
  const text = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');

  it('lists every error code', function () {
    const missing = Object.keys(ERROR_CODES).filter((code) => !text.includes(`\`${code}\``));
    assert.deepEqual(missing, []);
  });

  it('documents every exit code the CLI uses', function () {
    for (const code of new Set([...Object.values(EXIT_CODES), 1])) assert.match(text, new RegExp(`^\\| ${code} \\|`, 'm'));
  });
});
