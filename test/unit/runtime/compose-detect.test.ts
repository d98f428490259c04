// Which Compose the driver picks, with stand-in `docker` and `docker-compose` programs on the
// PATH (no engine): v2 first, v1 as a fallback, and v1 refused next to an engine it breaks on.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaissonError } from '../../../agent/errors.js';
import { detectComposeCommand } from '../../../agent/runtime/compose-command.js';

describe('compose command detection', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'caisson-compose-detect-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A program that prints `version` for `... version --short` and fails otherwise. */
  const program = (name: string, version: string | undefined): void => {
    const body = version === undefined ? 'exit 1' : `[ "$*" = "${name === 'docker' ? 'compose ' : ''}version --short" ] && { echo ${version}; exit 0; }; exit 1`;
    writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(dir, name), 0o755);
  };
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, PATH: dir });
  const engine = (v: string) => async () => v;

  it('prefers Compose v2 (`docker compose`) whatever the engine', async () => {
    program('docker', '2.40.3');
    program('docker-compose', '1.29.2');
    assert.deepEqual(await detectComposeCommand('auto', env(), engine('28.5.2')), ['docker', 'compose']);
  });

  it('falls back to docker-compose v1 next to an engine older than 25', async () => {
    program('docker', undefined);
    program('docker-compose', '1.29.2');
    assert.deepEqual(await detectComposeCommand('auto', env(), engine('20.10.24')), ['docker-compose']);
  });

  it('takes a docker-compose that is v2 next to a new engine', async () => {
    program('docker', undefined);
    program('docker-compose', '2.26.1');
    assert.deepEqual(await detectComposeCommand('auto', env(), engine('28.5.2')), ['docker-compose']);
  });

  for (const setting of ['auto', 'docker-compose'] as const) {
    it(`refuses Compose v1 next to Docker Engine 25+ with compose.unavailable naming the fix (${setting})`, async () => {
      program('docker', undefined);
      program('docker-compose', '1.29.2');
      const err = await detectComposeCommand(setting, env(), engine('28.5.2')).catch((e: unknown) => e);
      assert.ok(err instanceof CaissonError);
      assert.equal((err as CaissonError).code, 'compose.unavailable');
      assert.match((err as CaissonError).message, /Compose v1 1\.29\.2.*Docker Engine 28\.5\.2/);
      assert.match((err as CaissonError).next, /Compose v2/);
    });
  }
});
