import { expect } from 'chai';
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
      expect(code).to.match(/^[a-z]+\.[a-z0-9_]+$/);
      expect(info.next, code).to.be.a('string').and.have.length.greaterThan(10);
    }
  });

  it('keeps a CaissonError as it is', function () {
    const err = new CaissonError('policy.downgrade', 'older');
    expect(toCaissonError(err)).to.equal(err);
    expect(err.toJSON()).to.deep.equal({ code: 'policy.downgrade', message: 'older', next: ERROR_CODES['policy.downgrade'].next });
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
      expect((missing as NodeJS.ErrnoException).code).to.equal('ENOENT');
      expect(toCaissonError(missing).code).to.equal('docker.unreachable');
      const server = createServer().listen(join(dir, 'closed.sock'));
      await once(server, 'listening');
      server.close();
      await once(server, 'close');
      const refused = await connectError(join(dir, 'closed.sock'));
      expect(['ECONNREFUSED', 'ENOENT']).to.include((refused as NodeJS.ErrnoException).code);
      expect(toCaissonError(refused).code).to.equal('docker.unreachable');
      const hangUp = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      expect(toCaissonError(hangUp, 'docker.error').code).to.equal('docker.unreachable');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never reports a file-system error as docker.unreachable', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'caisson-errors-'));
    try {
      const missing = await readFile(join(dir, 'nope')).catch((e: unknown) => e);
      expect((missing as NodeJS.ErrnoException).code).to.equal('ENOENT');
      for (const fallback of ['internal.error', 'docker.error', 'docker.load_failed'] as const) {
        const mapped = toCaissonError(missing, fallback);
        expect(mapped.code, fallback).to.equal('fs.error');
        expect(mapped.message).to.include('no such file or directory').and.include(join(dir, 'nope'));
      }
      // a caller that knows what it was reading keeps its own code
      expect(toCaissonError(missing, 'package.read_failed').code).to.equal('package.read_failed');
      const denied = Object.assign(new Error(`EACCES: permission denied, open '${dir}/x'`), { code: 'EACCES', syscall: 'open', path: `${dir}/x` });
      expect(toCaissonError(denied).code).to.equal('fs.error');
      const full = Object.assign(new Error(`ENOSPC: no space left on device, write`), { code: 'ENOSPC', syscall: 'write', path: `${dir}/x` });
      expect(toCaissonError(full).code).to.equal('disk.insufficient');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('maps anything else to the fallback code with the first line of its message', function () {
    const mapped = toCaissonError(new Error('first line\nsecond line'), 'service.start_failed');
    expect(mapped.code).to.equal('service.start_failed');
    expect(mapped.message).to.equal('first line');
  });
});
