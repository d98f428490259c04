// runtime_mode "docker": one container, recreated from a new image under the same name.
//
// switchTo:  stop old → rename old to <name>.caisson-prev → create new as <name> → start new
// rollback:  remove whatever holds <name> that is not the old one → rename old back → start it
// commit:    remove the parked old container (its volumes stay)
//
// Containers are always addressed by ID once known: a dockerode handle taken by name stops
// working after a rename. Every step checks the current state first, so any step can be
// repeated after a crash.
import type Docker from 'dockerode';
import type { ServiceSpec } from '../config/services.js';
import { CaissonError } from '../errors.js';
import type { Checkpoint, DockerSwitchPlan, RuntimeState, ServiceDriver, SwitchPlan } from './driver.js';
import { dockerError, statusOf } from './docker-client.js';
import { recreateSpec, type ContainerInspectLike, type ImageConfigLike } from './container-spec.js';

export const PARKED_SUFFIX = '.caisson-prev';

export interface DockerDriverOptions {
  docker: Docker;
  /** Seconds the engine waits for the old container to stop before killing it (default: its own StopTimeout, else 10). */
  stopTimeoutSecs?: number;
}

export function createDockerDriver(service: ServiceSpec, opts: DockerDriverOptions): ServiceDriver {
  if (!service.docker) throw new CaissonError('config.invalid', `service "${service.name}" has no [services.docker] section`);
  const docker = opts.docker;
  const name = service.docker.container_name;
  const parkedName = `${name}${PARKED_SUFFIX}`;

  async function inspect(): Promise<RuntimeState> {
    const c = await findByName(docker, name);
    if (!c) return { running: false, status: 'missing', containerName: name };
    return stateOf(c);
  }

  async function plan(newImageRef: string): Promise<DockerSwitchPlan> {
    const c = await findByName(docker, name);
    if (!c) {
      throw new CaissonError('service.not_found', `no container named "${name}" exists for service "${service.name}"`);
    }
    if (c.HostConfig?.AutoRemove) {
      throw new CaissonError('service.unsupported', `container "${name}" was started with --rm: stopping it would delete it, so it cannot be kept for rollback`);
    }
    const parked = await findByName(docker, parkedName);
    if (parked && parked.Id !== c.Id) {
      throw new CaissonError(
        'service.unsupported',
        `a container named "${parkedName}" (${parked.Id.slice(0, 12)}) is left over from an earlier update`,
        { next: `Check it with \`docker inspect ${parkedName}\`; remove it if the service runs fine, then try again.` },
      );
    }
    const imageConfig = await imageConfigOf(docker, c.Image);
    const spec = recreateSpec(c as unknown as ContainerInspectLike, imageConfig, newImageRef);
    return {
      mode: 'docker',
      service: service.name,
      newImageRef,
      previous: {
        containerId: c.Id,
        containerName: name,
        imageRef: c.Config.Image,
        imageId: c.Image,
        wasRunning: Boolean(c.State.Running || c.State.Restarting),
      },
      parkedName,
      create: spec.create,
      connect: spec.connect,
      stopTimeoutSecs: opts.stopTimeoutSecs ?? stopTimeoutOf(c),
    };
  }

  async function switchTo(anyPlan: SwitchPlan, checkpoint: Checkpoint): Promise<string> {
    const plan = dockerPlan(anyPlan);
    const oldId = plan.previous.containerId;
    let old = await findById(docker, oldId);
    if (!old) throw new CaissonError('service.not_found', `the previous container ${oldId.slice(0, 12)} of "${name}" is gone`);

    checkpoint('stop_old', { containerId: oldId });
    // a parked container must not come back by itself: with restart policy "always" the
    // engine would start it again after a daemon restart or a reboot, beside the new one.
    // Changed before the stop so that it costs no downtime; rollback gives it back.
    if ((old.HostConfig.RestartPolicy?.Name ?? 'no') !== 'no') {
      await call(() => docker.getContainer(oldId).update({ RestartPolicy: { Name: 'no', MaximumRetryCount: 0 } }), `parking the restart policy of ${name}`);
    }
    if (old.State.Running || old.State.Restarting) {
      await call(() => docker.getContainer(oldId).stop({ t: plan.stopTimeoutSecs }), `stopping ${name}`, [304]);
    }

    checkpoint('park_old', { containerId: oldId, parkedName: plan.parkedName });
    old = await findById(docker, oldId);
    if (!old) throw new CaissonError('service.not_found', `the previous container ${oldId.slice(0, 12)} of "${name}" is gone`);
    if (old.Name !== `/${plan.parkedName}`) {
      await call(() => docker.getContainer(oldId).rename({ name: plan.parkedName }), `renaming ${name} to ${plan.parkedName}`);
    }

    checkpoint('create_new', { image: plan.newImageRef });
    // a container holding the name now can only be one a previous attempt created
    await removeHolderUnlessOld(docker, name, oldId);
    let newId: string;
    try {
      const created = await docker.createContainer({ ...plan.create, Image: plan.newImageRef, name });
      newId = created.id;
    } catch (err) {
      throw dockerError(err, `creating ${name} from ${plan.newImageRef}`, 'service.start_failed');
    }
    for (const { network, endpoint } of plan.connect) {
      await call(
        () => docker.getNetwork(network).connect({ Container: newId, EndpointConfig: endpoint }),
        `connecting ${name} to network ${network}`,
        [],
        'service.start_failed',
      );
    }

    checkpoint('start_new', { containerId: newId });
    await call(() => docker.getContainer(newId).start(), `starting ${name} from ${plan.newImageRef}`, [304], 'service.start_failed');
    return newId;
  }

  async function currentContainerId(): Promise<string | undefined> {
    return (await findByName(docker, name))?.Id;
  }

  async function rollback(anyPlan: SwitchPlan, checkpoint: Checkpoint): Promise<string> {
    const plan = dockerPlan(anyPlan);
    const oldId = plan.previous.containerId;
    try {
      const old = await findById(docker, oldId);
      if (!old) {
        throw new CaissonError('rollback.failed', `the previous container ${oldId.slice(0, 12)} of "${name}" no longer exists`);
      }
      const holder = await findByName(docker, name);
      if (holder && holder.Id !== oldId) {
        checkpoint('remove_new', { containerId: holder.Id });
        await removeContainer(docker, holder.Id);
        await removeOwnAnonymousVolumes(docker, holder, old);
      }
      if (old.Name !== `/${name}`) {
        checkpoint('unpark_old', { containerId: oldId });
        await call(() => docker.getContainer(oldId).rename({ name }), `renaming ${old.Name.slice(1)} back to ${name}`);
      }
      await restoreRestartPolicy(docker, old, plan.create);
      const now = await findById(docker, oldId);
      if (now && !now.State.Running) {
        checkpoint('start_old', { containerId: oldId });
        await call(() => docker.getContainer(oldId).start(), `starting the previous ${name}`, [304]);
      }
      return oldId;
    } catch (err) {
      if (err instanceof CaissonError && (err.code === 'rollback.failed' || err.code === 'docker.unreachable')) throw err;
      const e = dockerError(err, `restoring ${name}`);
      throw new CaissonError('rollback.failed', e.message, { cause: err });
    }
  }

  async function commit(plan: SwitchPlan, checkpoint: Checkpoint): Promise<void> {
    const oldId = dockerPlan(plan).previous.containerId;
    const old = await findById(docker, oldId);
    if (!old) return;
    // never remove the old container while it still (or again) serves the service
    if (old.Name === `/${name}`) return;
    const holder = await findByName(docker, name);
    if (!holder) {
      throw new CaissonError('docker.error', `refusing to remove the previous container of "${name}": no container holds the name "${name}"`);
    }
    checkpoint('remove_old', { containerId: oldId });
    await removeContainer(docker, oldId);
  }

  /** Gone when the engine says the previous container does not exist; an engine error proves nothing. */
  async function previousGone(plan: SwitchPlan): Promise<boolean> {
    return findById(docker, plan.previous.containerId).then((c) => !c, () => false);
  }

  /** Container environment values stay out of the state database (a rollback reuses the old container, which keeps them). */
  function forJournal(anyPlan: SwitchPlan): SwitchPlan {
    const plan = dockerPlan(anyPlan);
    const env = plan.create.Env;
    if (!Array.isArray(env)) return plan;
    return { ...plan, create: { ...plan.create, Env: env.map((e) => String(e).split('=')[0] + '=<redacted>') } };
  }

  return { inspect, plan, switchTo, currentContainerId, rollback, commit, previousGone, forJournal };
}

// --- helpers shared with the compose driver -------------------------------------------------------

export type ContainerInfo = Docker.ContainerInspectInfo;

export async function findById(docker: Docker, id: string): Promise<ContainerInfo | undefined> {
  try {
    return await docker.getContainer(id).inspect();
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw dockerError(err, `inspecting container ${id.slice(0, 12)}`);
  }
}

/** The container with exactly this name (never an ID prefix match), inspected by its ID. */
export async function findByName(docker: Docker, name: string): Promise<ContainerInfo | undefined> {
  let list: Docker.ContainerInfo[];
  try {
    list = await docker.listContainers({ all: true, filters: { name: [`^/${escapeRegex(name)}$`] } });
  } catch (err) {
    throw dockerError(err, `looking for container ${name}`);
  }
  const hit = list.find((c) => c.Names.includes(`/${name}`));
  if (!hit) return undefined;
  return findById(docker, hit.Id);
}

export function stateOf(c: ContainerInfo): RuntimeState {
  return {
    containerId: c.Id,
    containerName: c.Name.replace(/^\//, ''),
    imageRef: c.Config.Image,
    imageId: c.Image,
    running: Boolean(c.State.Running),
    status: c.State.Status,
    restartCount: c.RestartCount,
  };
}

export async function imageConfigOf(docker: Docker, imageId: string): Promise<ImageConfigLike> {
  try {
    const info = await docker.getImage(imageId).inspect();
    return (info.Config ?? {}) as ImageConfigLike;
  } catch (err) {
    if (statusOf(err) === 404) return {};
    throw dockerError(err, `inspecting image ${imageId}`);
  }
}

/** Give a parked container back the restart policy it had (the new one was created with it). */
async function restoreRestartPolicy(docker: Docker, old: ContainerInfo, create: { HostConfig?: { RestartPolicy?: { Name?: string; MaximumRetryCount?: number } } }): Promise<void> {
  const wanted = create.HostConfig?.RestartPolicy;
  if (!wanted?.Name || wanted.Name === (old.HostConfig.RestartPolicy?.Name ?? '')) return;
  await call(
    () => docker.getContainer(old.Id).update({ RestartPolicy: { Name: wanted.Name, MaximumRetryCount: wanted.MaximumRetryCount ?? 0 } }),
    `restoring the restart policy of ${old.Name.slice(1)}`,
  );
}

async function removeHolderUnlessOld(docker: Docker, name: string, oldId: string): Promise<void> {
  const holder = await findByName(docker, name);
  if (holder && holder.Id !== oldId) await removeContainer(docker, holder.Id);
}

/** Remove a container but never its volumes. Gone already is fine. */
async function removeContainer(docker: Docker, id: string): Promise<void> {
  await call(() => docker.getContainer(id).remove({ force: true, v: false }), `removing container ${id.slice(0, 12)}`, [404]);
}

/** Anonymous volumes the failed new container created for itself (not the old one's). */
async function removeOwnAnonymousVolumes(docker: Docker, removed: ContainerInfo, old: ContainerInfo): Promise<void> {
  const keep = new Set((old.Mounts ?? []).map((m) => m.Name).filter(Boolean));
  for (const m of removed.Mounts ?? []) {
    if (m.Type !== 'volume' || !m.Name || keep.has(m.Name) || !/^[0-9a-f]{64}$/.test(m.Name)) continue;
    try {
      await docker.getVolume(m.Name).remove();
    } catch {
      // in use elsewhere or already gone: leave it
    }
  }
}

async function call(
  fn: () => Promise<unknown>,
  doing: string,
  okStatuses: number[] = [],
  code: 'docker.error' | 'service.start_failed' = 'docker.error',
): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const s = statusOf(err);
    if (s !== undefined && okStatuses.includes(s)) return;
    throw dockerError(err, doing, code);
  }
}

function dockerPlan(plan: SwitchPlan): DockerSwitchPlan {
  if (plan.mode !== 'docker' || !plan.create || !plan.parkedName) {
    throw new CaissonError('internal.error', `the switch plan for "${plan.service}" is not a docker-mode plan`);
  }
  return { ...plan, connect: plan.connect ?? [], stopTimeoutSecs: plan.stopTimeoutSecs ?? 10 };
}

function stopTimeoutOf(c: ContainerInfo): number {
  const t = (c.Config as { StopTimeout?: unknown }).StopTimeout;
  return typeof t === 'number' && t >= 0 ? t : 10;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
