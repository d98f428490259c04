// The device of the stack tests on the fake engine (catalog STACK_SERVICES_TOML): api and
// worker in docker mode, front in compose project "shop" next to a sidecar the catalog does
// not name, each on its 2.0.0 image; and the stack package "shop" 2.1.0 updating the three
// in the order api, front, worker.
import assert from 'node:assert/strict';
import type { FakeContainer } from './fake-engine.js';
import type { FakeStackImage, FakeStackPackage } from './fake-packages.js';
import type { PipelineHarness } from './pipeline-harness.js';

export type StackService = 'api' | 'front' | 'worker';
export const STACK_ORDER: StackService[] = ['api', 'front', 'worker'];

export interface StackSetup {
  h: PipelineHarness;
  /** The containers serving before the update. */
  old: Record<StackService, FakeContainer>;
  sidecar: FakeContainer;
  /** The stack's entry for one service (version 2.1.0, healthy). */
  image(service: StackService, o?: Partial<FakeStackImage>): FakeStackImage;
  /** The stack package, with per-service changes (a broken, missing or failing image). */
  pkg(o?: Partial<Record<StackService, Partial<FakeStackImage>>>): FakeStackPackage;
  /** Every service runs its old container, healthy; the sidecar untouched. */
  expectOld(): void;
  /** Every service runs the package's image, healthy; the sidecar untouched; nothing parked. */
  expectNew(pkg: FakeStackPackage): void;
}

export function stackSetup(h: PipelineHarness): StackSetup {
  const old = {
    api: h.engine.addContainer('api', 'acme/api:2.0.0', { env: ['TOKEN=s3cret'] }),
    front: h.engine.addComposeService(h.service('front'), 'acme/front:2.0.0'),
    worker: h.engine.addContainer('worker', 'acme/worker:2.0.0'),
  };
  const sidecar = h.engine.addContainer('shop_cache_1', 'acme/cache:1', { compose: { project: 'shop', service: 'cache' } });
  const sidecarBefore = { ...sidecar };
  const image = (service: StackService, o: Partial<FakeStackImage> = {}): FakeStackImage => ({
    service,
    revision: `${service}-v1`,
    version: '2.1.0',
    reference: `acme/${service}:2.1.0`,
    ...o,
  });
  const serving = (name: StackService): FakeContainer => {
    const all = [...h.engine.containers.values()];
    const mine = name === 'front' ? all.filter((c) => c.compose?.project === 'shop' && c.compose.service === 'front') : all.filter((c) => c.name === name || c.name === `${name}.caisson-prev`);
    assert.equal(mine.map((c) => c.name).length, 1, `exactly one container for ${name}`);
    assert.equal(mine[0]!.running, true, `${name} runs`);
    return mine[0]!;
  };
  const sidecarUntouched = () => assert.deepEqual(h.engine.containers.get(sidecar.id), sidecarBefore, 'the sidecar is untouched');
  return {
    h,
    old,
    sidecar,
    image,
    pkg: (o = {}) => h.stackPackage({ name: 'shop', version: '2.1.0', services: STACK_ORDER.map((s) => image(s, o[s])) }),
    expectOld() {
      for (const name of STACK_ORDER) {
        const c = serving(name);
        assert.equal(c.imageId, old[name].imageId, `${name} on its old image`);
        if (name !== 'front') assert.equal(c.id, old[name].id, `the old ${name} container itself serves again`);
      }
      sidecarUntouched();
    },
    expectNew(pkg) {
      for (const [i, name] of STACK_ORDER.entries()) {
        const c = serving(name);
        assert.equal(c.imageId, pkg.images[i]!.imageId, `${name} on the new image`);
        if (name !== 'front') assert.equal(c.name, name);
      }
      sidecarUntouched();
    },
  };
}
