// An in-memory container engine behind the pipeline's engine port (agent/runtime/engine.ts),
// for unit tests of the pipeline and recovery without dockerd. It keeps containers, images
// and tags as plain data and implements both runtime modes' mechanics with the same
// sub-steps (checkpoints) as the real drivers, so every journal state and crash point of
// the real pipeline can be reached here:
//   docker mode:  stop_old, park_old, create_new, start_new | remove_new, unpark_old, start_old | remove_old
//   compose mode: write_override, compose_up | restore_override, retag_previous, compose_up
// Failures are injected per operation (`failOn`); `gone` makes the engine stop answering
// (docker.unreachable) until `back()`, optionally after a number of calls.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServiceSpec } from '../../agent/config/services.js';
import { CaissonError } from '../../agent/errors.js';
import type { ContainerInfo } from '../../agent/health/probes.js';
import type { Engine, ImageInfo, LoadImageOptions } from '../../agent/runtime/engine.js';
import type {
  Checkpoint,
  ComposeSwitchPlan,
  DockerSwitchPlan,
  RuntimeState,
  ServiceDriver,
  SwitchPlan,
} from '../../agent/runtime/driver.js';

/** How a container from an image behaves once started. */
export type Behaviour = 'healthy' | 'exits';

export interface FakeContainer {
  id: string;
  name: string;
  /** The reference it was created from (Config.Image). */
  ref: string;
  imageId: string;
  running: boolean;
  exitCode: number;
  restartCount: number;
  startedAt: string;
  env: string[];
  /** compose project/service labels, for compose-mode containers */
  compose?: { project: string; service: string };
}

/** Operations a test can make fail (once or always). */
export type FakeOp =
  | 'ping'
  | 'dataRoot'
  | 'tags'
  | 'restoreTags'
  | 'loadImage'
  | 'image'
  | 'container'
  | 'start'
  | 'plan'
  | 'switchTo'
  | 'rollback'
  | 'commit';

const PARKED_SUFFIX = '.caisson-prev';

export class FakeEngine implements Engine {
  readonly containers = new Map<string, FakeContainer>();
  /** reference → image ID */
  readonly tagMap = new Map<string, string>();
  /** image ID → how its containers behave */
  readonly behaviour = new Map<string, Behaviour>();
  /** compose override per catalog service name: the image ID it names, or null for none */
  readonly overrides = new Map<string, string | null>();
  /** the image reference each compose-mode service's compose file names */
  readonly composeFileImage = new Map<string, string>();
  /** Every call, in order (for assertions on what the pipeline asked). */
  readonly calls: string[] = [];
  private readonly failures = new Map<FakeOp, { error: Error; times: number }>();
  private goneFor: number | undefined;
  private isGone = false;

  // --- test controls ----------------------------------------------------------------

  /** Make `op` throw `error` for the next `times` calls (Infinity: until cleared). */
  failOn(op: FakeOp, error: Error, times = 1): this {
    this.failures.set(op, { error, times });
    return this;
  }

  /** The engine stops answering; with `forCalls`, it is back after that many refused calls. */
  gone(forCalls?: number): void {
    this.isGone = true;
    this.goneFor = forCalls;
  }

  back(): void {
    this.isGone = false;
    this.goneFor = undefined;
  }

  /** A container serving under `name` from `ref` (tagged to a fresh image ID if new). */
  addContainer(name: string, ref: string, opts: { running?: boolean; env?: string[]; compose?: { project: string; service: string } } = {}): FakeContainer {
    const imageId = this.tagMap.get(ref) ?? this.addImage(ref);
    const c: FakeContainer = {
      id: randomBytes(32).toString('hex'),
      name,
      ref,
      imageId,
      running: opts.running ?? true,
      exitCode: 0,
      restartCount: 0,
      startedAt: new Date().toISOString(),
      env: opts.env ?? [],
      compose: opts.compose,
    };
    this.containers.set(c.id, c);
    return c;
  }

  addImage(ref: string, behaviour: Behaviour = 'healthy'): string {
    const id = `sha256:${randomBytes(32).toString('hex')}`;
    this.tagMap.set(ref, id);
    this.behaviour.set(id, behaviour);
    return id;
  }

  /** A compose-mode service up from its compose file, which names `ref`. */
  addComposeService(service: ServiceSpec, ref: string): FakeContainer {
    this.composeFileImage.set(service.name, ref);
    const { project, service: composeService } = service.compose!;
    return this.addContainer(`${project}_${composeService}_1`, ref, { compose: { project, service: composeService } });
  }

  byName(name: string): FakeContainer | undefined {
    return [...this.containers.values()].find((c) => c.name === name);
  }

  // --- the port ---------------------------------------------------------------------

  async ping(): Promise<void> {
    this.enter('ping');
  }

  async dataRoot(): Promise<string | undefined> {
    this.enter('dataRoot');
    return undefined;
  }

  async tags(): Promise<Map<string, string>> {
    this.enter('tags');
    return new Map(this.tagMap);
  }

  async restoreTags(before: Map<string, string>, after: Map<string, string>): Promise<void> {
    this.enter('restoreTags');
    for (const ref of after.keys()) {
      const id = before.get(ref);
      if (id === undefined) this.tagMap.delete(ref);
      else this.tagMap.set(ref, id);
    }
    for (const [ref, id] of before) if (!after.has(ref) && !this.tagMap.has(ref)) this.tagMap.set(ref, id);
  }

  /** An image the engine holds, as inspect reports it (its ID is its config digest, as on the classic store). */
  async image(id: string): Promise<ImageInfo | undefined> {
    this.enter('image');
    return [...this.tagMap.values()].includes(id) ? ({ Id: id } as ImageInfo) : undefined;
  }

  /**
   * Reads the archive's manifest.json (a docker-save layout, as test/support/fake-packages.ts
   * writes it): the config name is the image ID, RepoTags are tagged. A "Behaviour" key in
   * the manifest entry says how its containers behave; a "Broken" one makes the load fail
   * there (the engine's answer to a corrupt layer), after the images before it were loaded.
   */
  async loadImage(path: string, opts: LoadImageOptions = {}): Promise<void> {
    this.enter('loadImage');
    const bytes = readFileSync(path);
    opts.onBytes?.(bytes.length, bytes.length);
    opts.onUploaded?.();
    const entries = readImageManifest(bytes);
    if (!entries) throw new CaissonError('docker.load_failed', 'the engine refused the archive: no manifest.json');
    // like docker load: images before a broken one are in; the broken one and later ones are not
    for (const entry of entries) {
      if (entry.Broken) throw new CaissonError('docker.load_failed', `the engine refused ${entry.Config}: unexpected EOF`);
      const id = `sha256:${entry.Config.replace(/\.json$/, '')}`;
      this.behaviour.set(id, entry.Behaviour ?? 'healthy');
      for (const ref of entry.RepoTags ?? []) this.tagMap.set(ref, id);
      opts.onProgress?.({ status: 'Loading layer', id: entry.Config.slice(0, 12), progressDetail: { current: 1, total: 1 } });
    }
  }

  async container(id: string): Promise<ContainerInfo | undefined> {
    this.enter('container');
    const c = this.containers.get(id);
    return c && inspectOf(c);
  }

  async startContainer(id: string): Promise<void> {
    this.enter('start');
    const c = this.containers.get(id);
    if (!c) throw new CaissonError('docker.error', `no container ${id.slice(0, 12)}`);
    c.running = true;
    c.startedAt = new Date().toISOString();
  }

  async exec(): Promise<{ exitCode: number | undefined; output: string }> {
    this.enter('container');
    return { exitCode: 0, output: '' };
  }

  driverFor(service: ServiceSpec): ServiceDriver {
    return service.runtime_mode === 'compose' ? new FakeComposeDriver(this, service) : new FakeDockerDriver(this, service);
  }

  // --- used by the fake drivers -----------------------------------------------------

  /** Every engine call starts here: refused while gone, or failing as injected. */
  enter(op: FakeOp): void {
    this.calls.push(op);
    if (this.isGone) {
      if (this.goneFor !== undefined && --this.goneFor <= 0) this.back();
      throw new CaissonError('docker.unreachable', `the Docker engine does not answer (fake engine gone during ${op})`);
    }
    const f = this.failures.get(op);
    if (f && f.times > 0) {
      f.times--;
      throw f.error;
    }
  }

  create(name: string, ref: string, from?: FakeContainer): FakeContainer {
    const imageId = this.tagMap.get(ref) ?? (ref.startsWith('sha256:') && this.behaviour.has(ref) ? ref : undefined);
    if (!imageId) throw new CaissonError('service.start_failed', `creating ${name} from ${ref}: no such image`);
    const c: FakeContainer = {
      id: randomBytes(32).toString('hex'),
      name,
      ref,
      imageId,
      running: false,
      exitCode: 0,
      restartCount: 0,
      startedAt: '',
      env: from ? [...from.env] : [],
      compose: from?.compose,
    };
    this.containers.set(c.id, c);
    return c;
  }

  start(c: FakeContainer): void {
    c.startedAt = new Date().toISOString();
    if (this.behaviour.get(c.imageId) === 'exits') {
      c.running = false;
      c.exitCode = 1;
    } else {
      c.running = true;
    }
  }
}

/** runtime_mode "docker", with the real driver's steps: park the old container, create a new one. */
class FakeDockerDriver implements ServiceDriver {
  private readonly name: string;

  constructor(
    private readonly e: FakeEngine,
    private readonly service: ServiceSpec,
  ) {
    this.name = service.docker!.container_name;
  }

  async inspect(): Promise<RuntimeState> {
    this.e.enter('container');
    const c = this.e.byName(this.name);
    return c ? stateOf(c) : { running: false, status: 'missing', containerName: this.name };
  }

  async plan(newImageRef: string): Promise<DockerSwitchPlan> {
    this.e.enter('plan');
    const c = this.e.byName(this.name);
    if (!c) throw new CaissonError('service.not_found', `no container named "${this.name}" exists for service "${this.service.name}"`);
    return {
      mode: 'docker',
      service: this.service.name,
      newImageRef,
      previous: { containerId: c.id, containerName: this.name, imageRef: c.ref, imageId: c.imageId, wasRunning: c.running },
      parkedName: `${this.name}${PARKED_SUFFIX}`,
      create: { Env: [...c.env] },
      connect: [],
      stopTimeoutSecs: 1,
    };
  }

  async switchTo(plan: SwitchPlan, checkpoint: Checkpoint): Promise<string> {
    const p = plan as DockerSwitchPlan;
    this.e.enter('switchTo');
    const old = this.e.containers.get(p.previous.containerId);
    if (!old) throw new CaissonError('service.not_found', `the previous container of "${this.name}" is gone`);
    checkpoint('stop_old', { containerId: old.id });
    old.running = false;
    checkpoint('park_old', { containerId: old.id, parkedName: p.parkedName });
    old.name = p.parkedName;
    checkpoint('create_new', { image: p.newImageRef });
    const holder = this.e.byName(this.name);
    if (holder && holder.id !== old.id) this.e.containers.delete(holder.id);
    const created = this.e.create(this.name, p.newImageRef, old);
    checkpoint('start_new', { containerId: created.id });
    this.e.start(created);
    return created.id;
  }

  async currentContainerId(): Promise<string | undefined> {
    return this.e.byName(this.name)?.id;
  }

  async rollback(plan: SwitchPlan, checkpoint: Checkpoint): Promise<string> {
    this.e.enter('rollback');
    const old = this.e.containers.get(plan.previous.containerId);
    if (!old) throw new CaissonError('rollback.failed', `the previous container of "${this.name}" no longer exists`);
    const holder = this.e.byName(this.name);
    if (holder && holder.id !== old.id) {
      checkpoint('remove_new', { containerId: holder.id });
      this.e.containers.delete(holder.id);
    }
    if (old.name !== this.name) {
      checkpoint('unpark_old', { containerId: old.id });
      old.name = this.name;
    }
    if (!old.running) {
      checkpoint('start_old', { containerId: old.id });
      this.e.start(old);
    }
    return old.id;
  }

  async commit(plan: SwitchPlan, checkpoint: Checkpoint): Promise<void> {
    this.e.enter('commit');
    const old = this.e.containers.get(plan.previous.containerId);
    if (!old || old.name === this.name) return;
    checkpoint('remove_old', { containerId: old.id });
    this.e.containers.delete(old.id);
  }

  async previousGone(plan: SwitchPlan): Promise<boolean> {
    return !this.e.containers.has(plan.previous.containerId);
  }

  forJournal(plan: SwitchPlan): SwitchPlan {
    const p = plan as DockerSwitchPlan;
    return { ...p, create: { ...p.create, Env: (p.create.Env ?? []).map((e) => `${e.split('=')[0]}=<redacted>`) } };
  }
}

/** runtime_mode "compose", with the real driver's steps: an override names the image, `up` recreates. */
class FakeComposeDriver implements ServiceDriver {
  private readonly project: string;
  private readonly composeService: string;

  constructor(
    private readonly e: FakeEngine,
    private readonly service: ServiceSpec,
  ) {
    this.project = service.compose!.project;
    this.composeService = service.compose!.service;
  }

  private current(): FakeContainer | undefined {
    return [...this.e.containers.values()].find((c) => c.compose?.project === this.project && c.compose.service === this.composeService);
  }

  async inspect(): Promise<RuntimeState> {
    this.e.enter('container');
    const c = this.current();
    return c ? stateOf(c) : { running: false, status: 'missing' };
  }

  async plan(newImageRef: string): Promise<ComposeSwitchPlan> {
    this.e.enter('plan');
    const c = this.current();
    if (!c) throw new CaissonError('service.not_found', `compose project "${this.project}" has no container for service "${this.composeService}"`);
    return {
      mode: 'compose',
      service: this.service.name,
      newImageRef,
      previous: { containerId: c.id, containerName: c.name, imageRef: c.ref, imageId: c.imageId, wasRunning: c.running },
      project: this.project,
      composeFile: this.service.compose!.file,
      composeService: this.composeService,
      overridePath: `/fake/${this.service.name}.override.yaml`,
      previousOverride: this.e.overrides.get(this.service.name) ?? null,
    };
  }

  async switchTo(plan: SwitchPlan, checkpoint: Checkpoint): Promise<string> {
    this.e.enter('switchTo');
    const imageId = this.e.tagMap.get(plan.newImageRef);
    if (!imageId) throw new CaissonError('service.start_failed', `the imported image ${plan.newImageRef} is not in the engine`);
    checkpoint('write_override', { image: imageId });
    this.e.overrides.set(this.service.name, imageId);
    checkpoint('compose_up', { image: imageId });
    return this.up().id;
  }

  async currentContainerId(): Promise<string | undefined> {
    return this.current()?.id;
  }

  async rollback(plan: SwitchPlan, checkpoint: Checkpoint): Promise<string> {
    const p = plan as ComposeSwitchPlan;
    this.e.enter('rollback');
    checkpoint('restore_override', { existed: p.previousOverride !== null });
    this.e.overrides.set(this.service.name, p.previousOverride);
    if (this.e.tagMap.get(p.previous.imageRef) !== p.previous.imageId) {
      checkpoint('retag_previous', { ref: p.previous.imageRef });
      if (!this.e.behaviour.has(p.previous.imageId)) throw new CaissonError('rollback.failed', 'the previous image is gone');
      this.e.tagMap.set(p.previous.imageRef, p.previous.imageId);
    }
    checkpoint('compose_up', { image: p.previous.imageRef });
    const c = this.up();
    if (c.imageId !== p.previous.imageId) throw new CaissonError('rollback.failed', `${this.composeService} runs another image after the rollback`);
    return c.id;
  }

  async commit(): Promise<void> {
    this.e.enter('commit');
  }

  async previousGone(): Promise<boolean> {
    return false;
  }

  forJournal(plan: SwitchPlan): SwitchPlan {
    return plan;
  }

  /** `compose up --force-recreate` of the one service: from the override's image, else the compose file's. */
  private up(): FakeContainer {
    const old = this.current();
    const ref = this.e.overrides.get(this.service.name) ?? this.e.composeFileImage.get(this.service.name);
    if (!ref) throw new CaissonError('compose.failed', `the fake compose file of ${this.service.name} names no image`);
    if (old) this.e.containers.delete(old.id);
    const c = this.e.create(`${this.project}_${this.composeService}_1`, ref, old);
    c.compose = { project: this.project, service: this.composeService };
    this.e.start(c);
    return c;
  }
}

function stateOf(c: FakeContainer): RuntimeState {
  return { containerId: c.id, containerName: c.name, imageRef: c.ref, imageId: c.imageId, running: c.running, status: c.running ? 'running' : 'exited' };
}

function inspectOf(c: FakeContainer): ContainerInfo {
  return {
    Id: c.id,
    Name: `/${c.name}`,
    Image: c.imageId,
    RestartCount: c.restartCount,
    Config: { Image: c.ref, Env: c.env },
    State: { Running: c.running, Restarting: false, Status: c.running ? 'running' : 'exited', ExitCode: c.exitCode, StartedAt: c.startedAt, OOMKilled: false },
    HostConfig: { RestartPolicy: { Name: 'no', MaximumRetryCount: 0 } },
  } as unknown as ContainerInfo;
}

interface ImageManifestEntry {
  Config: string;
  RepoTags?: string[];
  Behaviour?: Behaviour;
  Broken?: boolean;
}

/** manifest.json of a plain ustar docker-save archive (test data only). */
function readImageManifest(tar: Buffer): ImageManifestEntry[] | undefined {
  for (let o = 0; o + 512 <= tar.length; ) {
    const h = tar.subarray(o, o + 512);
    if (h.every((b) => b === 0)) return undefined;
    const name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('utf8').replace(/\0.*$/s, '').trim() || '0', 8);
    if (name === 'manifest.json') {
      return JSON.parse(tar.subarray(o + 512, o + 512 + size).toString('utf8')) as ImageManifestEntry[];
    }
    o += 512 + Math.ceil(size / 512) * 512;
  }
  return undefined;
}
