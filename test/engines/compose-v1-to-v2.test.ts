// A device whose project was started by Compose v1 (containers proj_svc_1) and that now has
// Compose v2 (containers proj-svc-1, the `docker compose` plugin) updates cleanly: the driver,
// on v2, finds the v1 container by its labels, replaces it, and rolls back onto it.
// Needs both Composes: run it through scripts/with-engine.sh docker28 (or docker28-containerd),
// whose Compose v2 is on the PATH, with this machine's v1 at CAISSON_COMPOSE_V1
// (default /usr/bin/docker-compose). Not part of the default suite (scripts/engine-matrix.sh
// runs it with the compose suite).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectDocker } from '../../agent/runtime/docker-client.js';
import { createDockerEngine } from '../../agent/runtime/engine.js';
import { detectComposeCommand } from '../../agent/runtime/compose-command.js';
import { createDriver } from '../../agent/runtime/index.js';
import { waitHealthy } from '../../agent/health/wait.js';
import type { ServiceSpec } from '../../agent/config/services.js';
import { buildOwnImage, cleanup, docker, recorder, waitForBody } from '../integration/runtime/support.js';
import { testPort } from '../support/ports.js';

const PROJECT = 'caisson-eng-upg';
const IMG1 = 'caisson-eng-upg/app:1';
const IMG2 = 'caisson-eng-upg/app:2';
const PORT = testPort(18180);
const V1 = process.env.CAISSON_COMPOSE_V1 ?? '/usr/bin/docker-compose';
const api = connectDocker();

describe('compose: a project started by Compose v1 is updated by Compose v2', function () {
  this.timeout(240_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'caisson-eng-upg-'));
    buildOwnImage({ ref: IMG1, version: '1' });
    buildOwnImage({ ref: IMG2, version: '2' });
  });
  after(() => {
    try {
      execFileSync('docker', ['compose', '-p', PROJECT, '-f', join(dir, 'stack.yaml'), 'down'], { stdio: 'ignore' });
    } catch {
      // name-based cleanup below
    }
    cleanup({ containerPrefix: PROJECT, images: [IMG1, IMG2], networks: [`${PROJECT}_default`] });
    rmSync(dir, { recursive: true, force: true });
  });

  it('replaces the v1-made container (proj_svc_1) with a v2 one, and rolls back onto the v1 one', async () => {
    assert.match(execFileSync(V1, ['version', '--short'], { encoding: 'utf8' }).trim(), /^1\./);
    assert.deepEqual(await detectComposeCommand('auto'), ['docker', 'compose']);
    const file = join(dir, 'stack.yaml');
    writeFileSync(file, ['version: "3.8"', 'services:', '  web:', `    image: ${IMG1}`, `    ports: ["127.0.0.1:${PORT}:8080"]`, '    labels: { caisson.test: rt }', '    stop_grace_period: 0s', ''].join('\n'));
    execFileSync(V1, ['-p', PROJECT, '-f', file, 'up', '-d'], { stdio: 'ignore' });
    const v1Name = `${PROJECT}_web_1`;
    const v1Id = docker('inspect', '-f', '{{.Id}}', v1Name);
    assert.equal(await waitForBody(`http://127.0.0.1:${PORT}/version`), '1');

    const service: ServiceSpec = {
      name: 'upg-web',
      service_revision: 'web-v1',
      platform: 'linux/amd64',
      runtime_mode: 'compose',
      compose: { project: PROJECT, file, service: 'web' },
      health_check: { kind: 'http', url: `http://127.0.0.1:${PORT}/health`, timeout_secs: 20, poll_interval_secs: 0.3, stable_secs: 1 },
      rollback: { automatic: true },
    };
    const driver = createDriver(service, { docker: api, stateDir: join(dir, 'state'), composeCommand: 'auto' });
    const plan = await driver.plan(IMG2);
    assert.equal(plan.previous.containerId, v1Id); // found by its labels, whatever its name
    const newId = await driver.switchTo(plan, recorder().checkpoint);
    await waitHealthy(createDockerEngine(api, { stateDir: dir }), newId, service.health_check);
    assert.equal(await waitForBody(`http://127.0.0.1:${PORT}/version`), '2');
    const names = docker('ps', '-a', '--format', '{{.Names}}', '--filter', `label=com.docker.compose.project=${PROJECT}`).split('\n').filter(Boolean);
    assert.deepEqual(names, [`${PROJECT}-web-1`]); // one container, v2's name; the v1 one is gone

    await driver.rollback(plan, recorder().checkpoint);
    assert.equal(await waitForBody(`http://127.0.0.1:${PORT}/version`), '1');
    const after = docker('ps', '-a', '--format', '{{.Names}}', '--filter', `label=com.docker.compose.project=${PROJECT}`).split('\n').filter(Boolean);
    assert.equal(after.length, 1);
  });
});
