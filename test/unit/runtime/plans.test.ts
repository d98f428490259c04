// The drivers' plan handling that needs no engine: what the journal may keep of a plan, and
// a plan of the other mode refused.
import assert from 'node:assert/strict';
import { assertExcludes, assertIncludes } from '../../support/assert.js';
import type Docker from 'dockerode';
import { findService, parseCatalog } from '../../../agent/config/services.js';
import { createComposeDriver } from '../../../agent/runtime/compose-driver.js';
import { createDockerDriver } from '../../../agent/runtime/docker-driver.js';
import type { ComposeSwitchPlan, DockerSwitchPlan } from '../../../agent/runtime/driver.js';

const catalog = parseCatalog(`catalog_version = 1
[[services]]
name = "web"
service_revision = "web-v1"
platform = "linux/amd64"
runtime_mode = "docker"
[services.docker]
container_name = "web"

[[services]]
name = "stack"
service_revision = "stack-v1"
platform = "linux/amd64"
runtime_mode = "compose"
[services.compose]
project = "stack"
file = "/srv/stack/docker-compose.yml"
service = "app"
`);
// never called: these paths ask the engine nothing
const noEngine = { modem: {} } as unknown as Docker;
const previous = { containerId: 'c1', containerName: 'web', imageRef: 'acme/web:1', imageId: 'sha256:1', wasRunning: true };
const dockerPlan: DockerSwitchPlan = {
  mode: 'docker',
  service: 'web',
  newImageRef: 'acme/web:2',
  previous,
  parkedName: 'web.caisson-prev',
  create: { Env: ['TOKEN=s3cret', 'EMPTY=', 'BARE'], HostConfig: { RestartPolicy: { Name: 'always' } } },
  connect: [],
  stopTimeoutSecs: 10,
};
const composePlan: ComposeSwitchPlan = {
  mode: 'compose',
  service: 'stack',
  newImageRef: 'acme/app:2',
  previous,
  project: 'stack',
  composeFile: '/srv/stack/docker-compose.yml',
  composeService: 'app',
  overridePath: '/var/lib/caisson/compose/stack.override.yaml',
  previousOverride: null,
};

describe('switch plans (no engine)', () => {
  const docker = createDockerDriver(findService(catalog, 'web')!, { docker: noEngine });
  const compose = createComposeDriver(findService(catalog, 'stack')!, { docker: noEngine, stateDir: '/var/lib/caisson' });

  it('docker mode keeps container environment values out of the journal, and everything else', () => {
    const kept = docker.forJournal(dockerPlan) as DockerSwitchPlan;
    assert.deepEqual(kept.create.Env, ['TOKEN=<redacted>', 'EMPTY=<redacted>', 'BARE=<redacted>']);
    assertExcludes(JSON.stringify(kept), 's3cret');
    assert.deepEqual({ ...kept, create: { ...kept.create, Env: dockerPlan.create.Env } }, dockerPlan);
    assertIncludes(dockerPlan.create.Env, 'TOKEN=s3cret', 'the plan itself is not changed');
  });

  it('compose mode keeps its plan as it is', () => {
    assert.deepEqual(compose.forJournal(composePlan), composePlan);
  });

  it('each driver refuses the other mode\'s plan as internal.error', () => {
    assert.throws(() => docker.forJournal(composePlan), { message: /not a docker-mode plan/ });
    assert.throws(() => compose.forJournal(dockerPlan), { message: /not a compose-mode plan/ });
  });
});
