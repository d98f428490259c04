import assert from 'node:assert/strict';
import { assertFields } from '../../support/assert.js';
import { parseCatalog, findService, dependenciesOf } from '../../../agent/config/services.js';
import { CaissonError } from '../../../agent/errors.js';

const VALID = `
catalog_version = 1

[[services]]
name = "frontend"
service_revision = "frontend-v1"
platform = "linux/amd64"
runtime_mode = "docker"

[services.docker]
container_name = "frontend"
image_reference = "example/frontend:current"

[services.health_check]
kind = "http"
url = "http://127.0.0.1:8080/health"
timeout_secs = 30
poll_interval_secs = 1
stable_secs = 10

[services.rollback]
automatic = true

[[services]]
name = "backend"
service_revision = "backend-v2"
platform = "linux/amd64"
runtime_mode = "compose"

[services.compose]
project = "caisson-stack"
file = "/etc/caisson/compose/backend.compose.yaml"
service = "backend"
`;

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CaissonError);
    return (err as CaissonError).code + ' ' + (err as Error).message;
  }
  return 'no error';
}

describe('services.toml catalog', function () {
  it('parses the design example with defaults filled in', function () {
    const catalog = parseCatalog(VALID);
    assert.deepEqual(catalog.services.map((s) => s.name), ['frontend', 'backend']);
    const backend = findService(catalog, 'backend')!;
    assertFields(backend.health_check, { kind: 'running', timeout_secs: 60, stable_secs: 5 });
    assert.equal(backend.rollback.automatic, true);
    assert.equal(findService(catalog, 'frontend')!.health_check.url, 'http://127.0.0.1:8080/health');
  });

  it('takes stop_timeout_secs for docker and compose services, and leaves it unset by default', function () {
    assert.equal(findService(parseCatalog(VALID), 'frontend')!.docker!.stop_timeout_secs, undefined);
    const text = VALID.replace('container_name = "frontend"', 'container_name = "frontend"\nstop_timeout_secs = 3').replace(
      'service = "backend"',
      'service = "backend"\nstop_timeout_secs = 0',
    );
    const catalog = parseCatalog(text);
    assert.equal(findService(catalog, 'frontend')!.docker!.stop_timeout_secs, 3);
    assert.equal(findService(catalog, 'backend')!.compose!.stop_timeout_secs, 0);
  });

  it('reads depends_on (none by default) and follows it through other services', function () {
    const three = VALID.replace('runtime_mode = "compose"', 'runtime_mode = "compose"\ndepends_on = ["frontend"]') +
      '\n[[services]]\nname = "worker"\nservice_revision = "w1"\nplatform = "linux/amd64"\nruntime_mode = "docker"\ndepends_on = ["backend"]\n[services.docker]\ncontainer_name = "worker"\n';
    const catalog = parseCatalog(three);
    assert.deepEqual(findService(catalog, 'frontend')!.depends_on ?? [], []);
    assert.deepEqual(findService(catalog, 'worker')!.depends_on, ['backend']);
    assert.deepEqual([...dependenciesOf(catalog, 'worker')].sort(), ['backend', 'frontend']);
    assert.deepEqual([...dependenciesOf(catalog, 'frontend')], []);
  });

  const broken: [string, string, RegExp][] = [
    ['unknown key', VALID.replace('runtime_mode = "docker"', 'runtime_mode = "docker"\ncolour = "red"'), /colour|key/i],
    ['bad TOML', 'catalog_version = ', /services\.toml/],
    ['wrong catalog version', VALID.replace('catalog_version = 1', 'catalog_version = 2'), /catalog_version/],
    ['duplicate service', VALID.replace('name = "backend"', 'name = "frontend"'), /listed twice/],
    ['docker mode without docker section', VALID.replace(/\[services\.docker\][^[]*/, ''), /no \[services\.docker\]/],
    ['compose mode without compose section', VALID.replace(/\[services\.compose\][^[]*$/, ''), /no \[services\.compose\]/],
    ['http check without url', VALID.replace('url = "http://127.0.0.1:8080/health"\n', ''), /needs url/],
    ['name with shell characters', VALID.replace('name = "frontend"', 'name = "front;rm -rf"'), /name/],
    ['relative compose file', VALID.replace('file = "/etc/caisson/compose/backend.compose.yaml"', 'file = "backend.yaml"'), /absolute/],
    ['unknown health kind', VALID.replace('kind = "http"', 'kind = "magic"'), /kind/],
    ['fractional stop_timeout_secs', VALID.replace('container_name = "frontend"', 'container_name = "frontend"\nstop_timeout_secs = 1.5'), /stop_timeout_secs must be whole seconds/],
    ['depends_on an unknown service', VALID.replace('runtime_mode = "compose"', 'runtime_mode = "compose"\ndepends_on = ["db"]'), /depends_on "db", which is not in the catalog/],
    ['depends_on itself', VALID.replace('runtime_mode = "compose"', 'runtime_mode = "compose"\ndepends_on = ["backend"]'), /cycle: backend -> backend/],
    [
      'depends_on in a cycle',
      VALID.replace('runtime_mode = "compose"', 'runtime_mode = "compose"\ndepends_on = ["frontend"]').replace('runtime_mode = "docker"', 'runtime_mode = "docker"\ndepends_on = ["backend"]'),
      /cycle: (frontend -> backend -> frontend|backend -> frontend -> backend)/,
    ],
    ['depends_on a name twice', VALID.replace('runtime_mode = "compose"', 'runtime_mode = "compose"\ndepends_on = ["frontend", "frontend"]'), /twice/],
    ['depends_on with a bad name', VALID.replace('runtime_mode = "compose"', 'runtime_mode = "compose"\ndepends_on = ["../x"]'), /depends_on/],
    ['depends_on as a string', VALID.replace('runtime_mode = "compose"', 'runtime_mode = "compose"\ndepends_on = "frontend"'), /depends_on/],
    ['negative stop_timeout_secs', VALID.replace('service = "backend"', 'service = "backend"\nstop_timeout_secs = -1'), /stop_timeout_secs/],
  ];
  for (const [name, text, message] of broken) {
    it(`rejects ${name} with config.invalid`, function () {
      const got = codeOf(() => parseCatalog(text));
      assert.match(got, /^config\.invalid /);
      assert.match(got, message);
    });
  }
});
