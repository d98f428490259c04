// A package built on one engine loads on another: the vendor's build machine and the device
// rarely run the same Docker. Run through scripts/with-engine.sh, the engine under test is
// DOCKER_HOST, this machine's own engine (CAISSON_HOST_DOCKER_SOCKET) is another, and a
// second with-engine.sh session around the first adds its engine (CAISSON_PEER_DOCKER_SOCKET,
// e.g. docker28 beside docker28-containerd); packages go every way between them, each passing
// the strict reader and the device's checks, and the loaded image is proven to be the built
// one. Run directly, both ends are the one engine.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCatalog } from '../../agent/config/services.js';
import { buildPackage, buildStackPackage } from '../../agent/package/builder.js';
import { parseManifest } from '../../agent/package/manifest.js';
import type { StackManifest } from '../../agent/package/types.js';
import { stagePackage } from '../../agent/package/reader.js';
import { validateStaged, validateStagedStack } from '../../agent/package/validate.js';
import { importImage } from '../../agent/pipeline/image-import.js';
import { connectDocker, defaultDockerSocket } from '../../agent/runtime/docker-client.js';
import { createDockerEngine } from '../../agent/runtime/engine.js';
import { buildTestImage, cleanupTestObjects, differsFromArchive, docker } from '../support/images.js';

const REF = 'caisson-it-cross/app:1.0.0';
const STACK = ['db', 'api'];
const stackRef = (s: string) => `caisson-it-cross/stack-${s}:1.0.0`;
const catalog = parseCatalog(`catalog_version = 1
[[services]]
name = "frontend"
service_revision = "frontend-v1"
platform = "linux/amd64"
runtime_mode = "docker"
[services.docker]
container_name = "caisson-it-cross"
${STACK.map((s) => `[[services]]\nname = "${s}"\nservice_revision = "${s}-v1"\nplatform = "linux/amd64"\nruntime_mode = "docker"\n[services.docker]\ncontainer_name = "caisson-it-cross-${s}"\n`).join('')}`);

interface End {
  name: string;
  socket: string;
}

/** Run `fn` with the docker CLI pointed at `socket`. */
function on<T>(socket: string, fn: () => T): T {
  const saved = process.env.DOCKER_HOST;
  process.env.DOCKER_HOST = `unix://${socket}`;
  try {
    return fn();
  } finally {
    if (saved === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = saved;
  }
}

describe('packages across engines (build on one, load on another)', function () {
  this.timeout(300_000);
  const underTest: End = { name: process.env.CAISSON_ENGINE ?? 'this engine', socket: defaultDockerSocket() };
  const ends: End[] = [underTest];
  if (process.env.CAISSON_PEER_DOCKER_SOCKET) ends.push({ name: process.env.CAISSON_PEER_ENGINE ?? 'the peer engine', socket: process.env.CAISSON_PEER_DOCKER_SOCKET });
  // CAISSON_CROSS_ENGINE_HOST=0 leaves this machine's engine out: scripts/test.sh's stage 2 runs
  // beside stage 1, whose imports on that engine would see this test's tags change (and the
  // reverse); its peer engine debian12-dind stands in for it there
  if (process.env.CAISSON_HOST_DOCKER_SOCKET && process.env.CAISSON_CROSS_ENGINE_HOST !== '0') ends.push({ name: 'debian12 (this machine)', socket: process.env.CAISSON_HOST_DOCKER_SOCKET });
  // every ordered pair of distinct engines; alone, the one engine both ways
  const directions: Array<readonly [End, End]> =
    ends.length > 1 ? ends.flatMap((from) => ends.filter((to) => to !== from).map((to) => [from, to] as const)) : [[underTest, underTest], [underTest, underTest]];
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'caisson-it-cross-'));
  });
  after(() => {
    for (const end of ends) on(end.socket, () => cleanupTestObjects([REF, ...STACK.map(stackRef)]));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [n, [from, to]] of directions.entries()) {
    it(`builds on ${from.name}, loads on ${to.name}`, async () => {
      // the image a previous direction loaded here goes first: a build would leave it untagged
      on(from.socket, () => {
        cleanupTestObjects([REF]);
        buildTestImage({ ref: REF, version: `from ${from.name}` });
      });
      const out = join(dir, `direction-${n}.edgepkg`); // both ends may be one engine: names per direction
      await buildPackage({ imageRef: REF, service: 'frontend', serviceRevision: 'frontend-v1', platform: 'linux/amd64', version: '1.0.0', out, dockerSocket: from.socket });

      const staged = await stagePackage(out, join(dir, `staging-${n}`));
      await validateStaged(staged, { catalog, trustedKeys: [], updaterVersion: '0.1.0' }); // the strict reader and the device's checks
      assert.deepEqual(staged.imageArchive?.repoTags, [REF]);
      on(to.socket, () => cleanupTestObjects([REF]));
      await importImage(createDockerEngine(connectDocker(to.socket), { stateDir: dir }), { imagePath: staged.imagePath, reference: REF, expectedImage: staged.imageArchive, beforeLoad: () => undefined });
      on(to.socket, () => {
        assert.equal(differsFromArchive(REF, staged.imageArchive), undefined);
        assert.equal(docker('run', '--rm', REF, '/bin/busybox', 'cat', '/www/version'), `from ${from.name}`);
      });
    });
  }

  for (const [n, [from, to]] of directions.entries()) {
    it(`a stack of two images built on ${from.name} loads on ${to.name}, each the image its service pins`, async () => {
      on(from.socket, () => {
        cleanupTestObjects(STACK.map(stackRef));
        STACK.forEach((s) => buildTestImage({ ref: stackRef(s), version: `${s} from ${from.name}` }));
      });
      const out = join(dir, `stack-${n}.edgepkg`);
      await buildStackPackage({
        stack: 'shop', platform: 'linux/amd64', version: '1.0.0', out, dockerSocket: from.socket,
        members: STACK.map((s) => ({ service: s, serviceRevision: `${s}-v1`, imageRef: stackRef(s) })),
      });
      const staged = await stagePackage(out, join(dir, `stack-staging-${n}`));
      const { members } = await validateStagedStack(staged, { catalog, trustedKeys: [], updaterVersion: '0.1.0' }, parseManifest(staged.manifestBytes) as StackManifest);
      assert.deepEqual(members.map((m) => m.image.repoTags), STACK.map((s) => [stackRef(s)]));
      on(to.socket, () => {
        cleanupTestObjects(STACK.map(stackRef));
        docker('load', '-i', staged.imagePath);
        for (const m of members) {
          assert.equal(differsFromArchive(m.entry.reference, m.image), undefined, m.entry.service);
          assert.equal(docker('run', '--rm', m.entry.reference, '/bin/busybox', 'cat', '/www/version'), `${m.entry.service} from ${from.name}`);
        }
      });
    });
  }
});
