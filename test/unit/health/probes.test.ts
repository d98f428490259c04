// The network probes against real local servers (no Docker needed), and the container-state
// probes on inspect-shaped objects.
import assert from 'node:assert/strict';
import { assertFields, assertIncludes } from '../../support/assert.js';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { probeContainerHealth, probeHttp, probeRunning, probeTcp, type ContainerInfo } from '../../../agent/health/probes.js';
import { CaissonError } from '../../../agent/errors.js';

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** A port nothing listens on: bind one, note it, close it. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

function container(state: Record<string, unknown>, healthcheck?: string[]): ContainerInfo {
  return {
    Config: { Image: 'x:1', Healthcheck: healthcheck ? { Test: healthcheck } : undefined },
    State: { Status: 'running', Running: true, Restarting: false, ExitCode: 0, ...state },
  } as unknown as ContainerInfo;
}

describe('health/probes', function () {
  let server: http.Server;
  let port: number;
  let hang: net.Server;
  let hangPort: number;

  before(async function () {
    server = http.createServer((req, res) => {
      const code = Number(req.url?.slice(1)) || 200;
      res.writeHead(code).end('x');
    });
    port = await listen(server);
    // accepts connections but never answers HTTP
    hang = net.createServer(() => undefined);
    hangPort = await listen(hang);
  });

  after(function () {
    server.close();
    hang.close();
  });

  it('http: 2xx passes, other statuses fail with the status in the detail', async function () {
    assert.equal((await probeHttp(`http://127.0.0.1:${port}/204`, undefined, 2000)).ok, true);
    const r = await probeHttp(`http://127.0.0.1:${port}/503`, undefined, 2000);
    assert.equal(r.ok, false);
    assertIncludes(r.detail, 'answered 503');
  });

  it('http: expect_status passes only on that status', async function () {
    assert.equal((await probeHttp(`http://127.0.0.1:${port}/404`, 404, 2000)).ok, true);
    assert.equal((await probeHttp(`http://127.0.0.1:${port}/200`, 404, 2000)).ok, false);
  });

  it('http: a refused connection and a silent server fail with a reason', async function () {
    const refused = await probeHttp(`http://127.0.0.1:${await closedPort()}/`, undefined, 2000);
    assertFields(refused, { ok: false });
    assertIncludes(refused.detail, 'ECONNREFUSED');
    const silent = await probeHttp(`http://127.0.0.1:${hangPort}/`, undefined, 300);
    assert.equal(silent.ok, false);
    assertIncludes(silent.detail, 'no answer');
  });

  it('tcp: connects to a listening port, fails on a closed one', async function () {
    assert.equal((await probeTcp('127.0.0.1', port, 2000)).ok, true);
    const r = await probeTcp('127.0.0.1', await closedPort(), 2000);
    assert.equal(r.ok, false);
    assertIncludes(r.detail, 'ECONNREFUSED');
  });

  it('running: only a running, not restarting container passes', function () {
    assert.equal(probeRunning(container({})).ok, true);
    assert.equal(probeRunning(container({ Restarting: true, Status: 'restarting' })).ok, false);
    const exited = probeRunning(container({ Running: false, Status: 'exited', ExitCode: 2 }));
    assert.equal(exited.ok, false);
    assertIncludes(exited.detail, 'exit code 2');
  });

  it('container_health: healthy passes, starting fails, no HEALTHCHECK is config.invalid', function () {
    const hc = ['CMD', 'true'];
    assert.equal(probeContainerHealth(container({ Health: { Status: 'healthy' } }, hc)).ok, true);
    const starting = probeContainerHealth(container({ Health: { Status: 'starting', Log: [{ ExitCode: 1, Output: 'boom\n' }] } }, hc));
    assert.equal(starting.ok, false);
    assertIncludes(starting.detail, 'boom');
    for (const none of [undefined, ['NONE']]) {
      let err: unknown;
      try {
        probeContainerHealth(container({}, none));
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof CaissonError);
      assert.equal((err as CaissonError).code, 'config.invalid');
    }
  });
});
