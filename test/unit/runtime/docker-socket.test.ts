// Which engine socket Caisson uses when none is configured: its own setting, then Docker's.
import assert from 'node:assert/strict';
import { CaissonError } from '../../../agent/errors.js';
import { connectDocker, defaultDockerSocket, socketPathOf } from '../../../agent/runtime/docker-client.js';

describe('engine socket from the environment', () => {
  it('CAISSON_DOCKER_SOCKET first, then DOCKER_HOST (unix://), then /var/run/docker.sock', () => {
    assert.equal(defaultDockerSocket({ CAISSON_DOCKER_SOCKET: '/run/a.sock', DOCKER_HOST: 'unix:///run/b.sock' }), '/run/a.sock');
    assert.equal(defaultDockerSocket({ DOCKER_HOST: 'unix:///run/b.sock' }), '/run/b.sock');
    assert.equal(defaultDockerSocket({}), '/var/run/docker.sock');
    assert.equal(defaultDockerSocket({ DOCKER_HOST: '' }), '/var/run/docker.sock');
  });

  it('refuses a DOCKER_HOST that is not a local unix socket with config.invalid', () => {
    for (const host of ['tcp://10.0.0.1:2375', 'ssh://root@dev', 'unix://relative.sock']) {
      const err = (() => {
        try {
          return defaultDockerSocket({ DOCKER_HOST: host });
        } catch (e) {
          return e;
        }
      })();
      assert.ok(err instanceof CaissonError, host);
      assert.equal((err as CaissonError).code, 'config.invalid');
    }
  });

  it('a client made without a socket follows the environment; an explicit socket wins', () => {
    const saved = { c: process.env.CAISSON_DOCKER_SOCKET, d: process.env.DOCKER_HOST };
    try {
      delete process.env.CAISSON_DOCKER_SOCKET;
      process.env.DOCKER_HOST = 'unix:///run/elsewhere.sock';
      assert.equal(socketPathOf(connectDocker()), '/run/elsewhere.sock');
      assert.equal(socketPathOf(connectDocker('/run/given.sock')), '/run/given.sock');
    } finally {
      for (const [k, v] of [['CAISSON_DOCKER_SOCKET', saved.c], ['DOCKER_HOST', saved.d]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
