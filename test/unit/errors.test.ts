import assert from 'node:assert/strict';
import { assertIncludes } from '../support/assert.js';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaissonError, ERROR_CODES, toCaissonError } from '../../agent/errors.js';

describe('error codes', function () {
  it('are stable dotted names, each with a next step', function () {
    for (const [code, info] of Object.entries(ERROR_CODES)) {
      assert.match(code, /^[a-z]+\.[a-z0-9_]+$/);
      assert.equal(typeof info.next, 'string', code);
      assert.ok(info.next.length > 10, code);
    }
  });

  it('keeps a CaissonError as it is', function () {
    const err = new CaissonError('policy.downgrade', 'older');
    assert.equal(toCaissonError(err), err);
    assert.deepEqual(err.toJSON(), { code: 'policy.downgrade', message: 'older', next: ERROR_CODES['policy.downgrade'].next });
  });

  /** The error a real connect to a Unix socket path raises. */
  const connectError = (path: string) =>
    new Promise<Error>((resolve) => {
      const sock = createConnection(path);
      sock.once('connect', () => sock.destroy());
      sock.once('error', resolve);
    });

  it('maps a failed connect to the engine socket to docker.unreachable', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'caisson-errors-'));
    try {
      const missing = await connectError(join(dir, 'docker.sock')); // ENOENT from connect
      assert.equal((missing as NodeJS.ErrnoException).code, 'ENOENT');
      assert.equal(toCaissonError(missing).code, 'docker.unreachable');
      const server = createServer().listen(join(dir, 'closed.sock'));
      await once(server, 'listening');
      server.close();
      await once(server, 'close');
      const refused = await connectError(join(dir, 'closed.sock'));
      assertIncludes(['ECONNREFUSED', 'ENOENT'], (refused as NodeJS.ErrnoException).code);
      assert.equal(toCaissonError(refused).code, 'docker.unreachable');
      const hangUp = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      assert.equal(toCaissonError(hangUp, 'docker.error').code, 'docker.unreachable');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never reports a file-system error as docker.unreachable', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'caisson-errors-'));
    try {
      const missing = await readFile(join(dir, 'nope')).catch((e: unknown) => e);
      assert.equal((missing as NodeJS.ErrnoException).code, 'ENOENT');
      for (const fallback of ['internal.error', 'docker.error', 'docker.load_failed'] as const) {
        const mapped = toCaissonError(missing, fallback);
        assert.equal(mapped.code, 'fs.error', fallback);
        assertIncludes(mapped.message, 'no such file or directory');
        assertIncludes(mapped.message, join(dir, 'nope'));
      }
      // a caller that knows what it was reading keeps its own code
      assert.equal(toCaissonError(missing, 'package.read_failed').code, 'package.read_failed');
      const denied = Object.assign(new Error(`EACCES: permission denied, open '${dir}/x'`), { code: 'EACCES', syscall: 'open', path: `${dir}/x` });
      assert.equal(toCaissonError(denied).code, 'fs.error');
      const full = Object.assign(new Error(`ENOSPC: no space left on device, write`), { code: 'ENOSPC', syscall: 'write', path: `${dir}/x` });
      assert.equal(toCaissonError(full).code, 'disk.insufficient');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('maps anything else to the fallback code with the first line of its message', function () {
    const mapped = toCaissonError(new Error('first line\nsecond line'), 'service.start_failed');
    assert.equal(mapped.code, 'service.start_failed');
    assert.equal(mapped.message, 'first line');
  });
});
