// runtime_mode "compose": the developer's compose file is never edited. Caisson writes its
// own override file, <stateDir>/compose/<service>.override.yaml, that sets only
// `services.<svc>.image` (to the image reference, so `docker ps` shows `backend:1.2.3`), and runs
//   <compose> -p <project> -f <file> -f <override> up -d --no-deps --force-recreate <svc>
// so that only that one service is recreated. Rollback puts the previous override back (or
// removes it), makes sure the previous image reference still resolves to the previous image
// ID, and runs the same command again.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type Docker from 'dockerode';
import type { ServiceSpec } from '../config/services.js';
import { CaissonError, describe } from '../errors.js';
import { writeFileAtomic } from '../atomic.js';
import { COMPOSE_PROJECT_PATTERN, COMPOSE_SERVICE_PATTERN, IMAGE_REFERENCE_PATTERN, NAME_PATTERN } from '../config/patterns.js';
import type { Checkpoint, ComposeSwitchPlan, RuntimeState, ServiceDriver, SwitchPlan } from './driver.js';
import { dockerError, socketPathOf } from './docker-client.js';
import { imageIdOf, tagImage } from './image-tags.js';
import { findById, stateOf, type ContainerInfo } from './docker-driver.js';
import { detectComposeCommand, lastLines, run, type ComposeCommandSetting } from './compose-command.js';

export interface ComposeDriverOptions {
  docker: Docker;
  stateDir: string;
  composeCommand?: ComposeCommandSetting;
  /** Upper bound for one compose invocation (default 10 minutes). */
  commandTimeoutMs?: number;
  /** `up --timeout`: seconds the old container gets to stop (default: the compose file's stop_grace_period, else 10). */
  stopTimeoutSecs?: number;
}

// checked again here (the catalog was checked on load): these names reach a command line
const PROJECT_RE = COMPOSE_PROJECT_PATTERN;
const SERVICE_RE = COMPOSE_SERVICE_PATTERN;
const FILE_NAME_RE = NAME_PATTERN;
const REF_RE = /^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,254}$/;

export function overridePathFor(stateDir: string, serviceName: string): string {
  if (!FILE_NAME_RE.test(serviceName)) throw new CaissonError('config.invalid', `service name "${serviceName}" cannot name a file`);
  return join(stateDir, 'compose', `${serviceName}.override.yaml`);
}

export function createComposeDriver(service: ServiceSpec, opts: ComposeDriverOptions): ServiceDriver {
  const cfg = service.compose;
  if (!cfg) throw new CaissonError('config.invalid', `service "${service.name}" has no [services.compose] section`);
  if (!PROJECT_RE.test(cfg.project)) throw new CaissonError('config.invalid', `compose project "${cfg.project}" is not a valid name`);
  if (!SERVICE_RE.test(cfg.service)) throw new CaissonError('config.invalid', `compose service "${cfg.service}" is not a valid name`);
  if (!cfg.file.startsWith('/')) throw new CaissonError('config.invalid', `compose file "${cfg.file}" must be an absolute path`);
  const docker = opts.docker;
  const overridePath = overridePathFor(opts.stateDir, service.name);
  const socket = socketPathOf(docker);
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (socket) env.DOCKER_HOST = `unix://${socket}`;
  let command: string[] | undefined;

  async function compose(): Promise<string[]> {
    command ??= await detectComposeCommand(opts.composeCommand ?? 'auto', env, async () => {
      try {
        return (await docker.version()).Version;
      } catch (err) {
        throw dockerError(err, 'asking the engine for its version');
      }
    });
    return command;
  }

  async function up(doing: string): Promise<void> {
    const cmd = await compose();
    const files = ['-f', cfg!.file];
    try {
      readFileSync(overridePath);
      files.push('-f', overridePath);
    } catch {
      // no override: the compose file alone
    }
    const timeout = opts.stopTimeoutSecs === undefined ? [] : ['--timeout', String(opts.stopTimeoutSecs)];
    const args = [...cmd.slice(1), '-p', cfg!.project, ...files, 'up', '-d', '--no-deps', '--force-recreate', ...timeout, cfg!.service];
    const r = await run(cmd[0]!, args, env, opts.commandTimeoutMs ?? 600_000);
    if (r.code !== 0) {
      throw new CaissonError('compose.failed', `${doing}: \`${cmd.join(' ')} up\` failed (exit ${r.code}): ${lastLines(r.stderr || r.stdout)}`);
    }
  }

  async function findServiceContainer(): Promise<ContainerInfo | undefined> {
    let list: Docker.ContainerInfo[];
    try {
      list = await docker.listContainers({
        all: true,
        filters: {
          label: [
            `com.docker.compose.project=${cfg!.project}`,
            `com.docker.compose.service=${cfg!.service}`,
            'com.docker.compose.oneoff=False',
          ],
        },
      });
    } catch (err) {
      throw dockerError(err, `looking for the containers of ${cfg!.project}/${cfg!.service}`);
    }
    if (!list.length) return undefined;
    // prefer a running one, then the newest
    list.sort((a, b) => Number(b.State === 'running') - Number(a.State === 'running') || b.Created - a.Created);
    return findById(docker, list[0]!.Id);
  }

  async function inspect(): Promise<RuntimeState> {
    const c = await findServiceContainer();
    if (!c) return { running: false, status: 'missing' };
    return { ...stateOf(c), imageRef: await readableRef(c) };
  }

  /** Overrides written before Caisson named images by reference hold an ID; show a tag of it instead. */
  async function readableRef(c: ContainerInfo): Promise<string> {
    if (!c.Config.Image.startsWith('sha256:')) return c.Config.Image;
    try {
      const tags = (await docker.getImage(c.Image).inspect()).RepoTags ?? [];
      return tags[0] ?? c.Config.Image;
    } catch {
      return c.Config.Image;
    }
  }

  async function plan(newImageRef: string): Promise<ComposeSwitchPlan> {
    if (!REF_RE.test(newImageRef)) throw new CaissonError('image.invalid', `"${newImageRef}" is not an image reference Caisson will write`);
    const c = await findServiceContainer();
    if (!c) {
      throw new CaissonError('service.not_found', `compose project "${cfg!.project}" has no container for service "${cfg!.service}"`, {
        next: `Start it once with \`docker compose -p ${cfg!.project} -f ${cfg!.file} up -d\` (or fix [services.compose] in services.toml).`,
      });
    }
    return {
      mode: 'compose',
      service: service.name,
      newImageRef,
      previous: {
        containerId: c.Id,
        containerName: c.Name.replace(/^\//, ''),
        imageRef: await readableRef(c),
        imageId: c.Image,
        wasRunning: Boolean(c.State.Running || c.State.Restarting),
      },
      project: cfg!.project,
      composeFile: cfg!.file,
      composeService: cfg!.service,
      overridePath,
      previousOverride: readOptional(overridePath),
    };
  }

  async function switchTo(plan: SwitchPlan, checkpoint: Checkpoint): Promise<string> {
    const d = composePlan(plan);
    if (!REF_RE.test(plan.newImageRef)) throw new CaissonError('image.invalid', `"${plan.newImageRef}" is not an image reference Caisson will write`);
    // The override names the image by its reference, so `docker ps` and `docker compose ps`
    // show the version. The reference passed the manifest's strict pattern (no quotes, no
    // spaces, nothing YAML or a shell would read specially) and is written JSON-quoted; the
    // import proved it points at the package's image, and it must still point at that ID
    // now and in the container compose creates.
    if (!IMAGE_REFERENCE_PATTERN.test(plan.newImageRef)) {
      throw new CaissonError('image.invalid', `"${plan.newImageRef}" is not an image reference Caisson will write`);
    }
    const imageId = await imageIdOf(docker, plan.newImageRef);
    if (!imageId || !/^sha256:[0-9a-f]{64}$/.test(imageId)) {
      throw new CaissonError('service.start_failed', `the imported image ${plan.newImageRef} is not in the engine`);
    }
    checkpoint('write_override', { path: d.overridePath, image: plan.newImageRef, imageId });
    mkdirSync(dirname(d.overridePath), { recursive: true });
    writeFileAtomic(d.overridePath, overrideYaml(cfg!.file, cfg!.service, plan.newImageRef));
    checkpoint('compose_up', { image: plan.newImageRef, imageId });
    await up(`switching ${cfg!.service} to ${plan.newImageRef}`);
    const c = await findServiceContainer();
    if (!c) throw new CaissonError('compose.failed', `compose reported success but no container of ${cfg!.project}/${cfg!.service} exists`);
    if (c.Image !== imageId) {
      throw new CaissonError('image.id_mismatch', `${cfg!.service} was created from ${c.Image.slice(0, 19)}, but ${plan.newImageRef} was ${imageId.slice(0, 19)}: its tag moved during the switch`);
    }
    return c.Id;
  }

  async function currentContainerId(): Promise<string | undefined> {
    return (await findServiceContainer())?.Id;
  }

  async function rollback(plan: SwitchPlan, checkpoint: Checkpoint): Promise<string> {
    const d = composePlan(plan);
    try {
      checkpoint('restore_override', { path: d.overridePath, existed: d.previousOverride !== null });
      if (d.previousOverride === null) rmSync(d.overridePath, { force: true });
      else writeFileAtomic(d.overridePath, d.previousOverride);

      const ref = plan.previous.imageRef;
      const id = await imageIdOf(docker, ref);
      if (id !== plan.previous.imageId && ref !== plan.previous.imageId) {
        checkpoint('retag_previous', { ref, imageId: plan.previous.imageId });
        if (!(await imageIdOf(docker, plan.previous.imageId))) {
          throw new CaissonError('rollback.failed', `the previous image ${plan.previous.imageId.slice(0, 19)} of ${cfg!.service} is gone`);
        }
        await tagImage(docker, plan.previous.imageId, ref);
      }
      checkpoint('compose_up', { image: ref });
      await up(`restoring ${cfg!.service}`);
      const c = await findServiceContainer();
      if (!c) throw new CaissonError('rollback.failed', `no container of ${cfg!.project}/${cfg!.service} exists after the rollback`);
      if (c.Image !== plan.previous.imageId) {
        throw new CaissonError('rollback.failed', `${cfg!.service} runs ${c.Image.slice(0, 19)} after the rollback, not the previous ${plan.previous.imageId.slice(0, 19)}`);
      }
      return c.Id;
    } catch (err) {
      if (err instanceof CaissonError && (err.code === 'rollback.failed' || err.code === 'docker.unreachable')) throw err;
      throw new CaissonError('rollback.failed', `restoring ${cfg!.service}: ${describe(err)}`, { cause: err });
    }
  }

  async function commit(_plan: SwitchPlan, _checkpoint: Checkpoint): Promise<void> {
    // Compose already replaced the old container; the override stays, since the service now
    // runs through it. Nothing else was kept.
  }

  /**
   * Compose recreates the previous container from the previous image, which the rollback
   * re-tags; whether that is gone is left for the rollback itself to find out.
   */
  async function previousGone(_plan: SwitchPlan): Promise<boolean> {
    return false;
  }

  /** The compose plan holds no secrets (the override names an image only). */
  function forJournal(plan: SwitchPlan): SwitchPlan {
    return composePlan(plan);
  }

  return { inspect, plan, switchTo, currentContainerId, rollback, commit, previousGone, forJournal };
}

/**
 * The override file. Compose v1 insists that every file of a project uses the same format
 * version, so the base file's `version:` (if any) is repeated.
 */
export function overrideYaml(composeFile: string, composeService: string, imageRef: string): string {
  if (!SERVICE_RE.test(composeService)) throw new CaissonError('config.invalid', `compose service "${composeService}" is not a valid name`);
  if (!REF_RE.test(imageRef)) throw new CaissonError('image.invalid', `"${imageRef}" is not an image reference Caisson will write`);
  const version = composeVersionOf(readOptional(composeFile) ?? '');
  const lines = ['# Written by Caisson: the image its last update installed. Do not edit.', '# Pass this file after the compose file (-f FILE -f THIS) in every compose command.'];
  if (version) lines.push(`version: ${JSON.stringify(version)}`);
  lines.push('services:', `  ${JSON.stringify(composeService)}:`, `    image: ${JSON.stringify(imageRef)}`, '');
  return lines.join('\n');
}

/** The top-level `version:` of a compose file, if it has one. */
export function composeVersionOf(text: string): string | undefined {
  const m = /^version\s*:\s*["']?([0-9]+(?:\.[0-9]+)*)["']?\s*(?:#.*)?$/m.exec(text);
  return m?.[1];
}

function readOptional(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CaissonError('compose.failed', `cannot read ${path}: ${describe(err)}`, { cause: err });
  }
}

function composePlan(plan: SwitchPlan): ComposeSwitchPlan {
  if (plan.mode !== 'compose' || !plan.overridePath || plan.previousOverride === undefined) {
    throw new CaissonError('internal.error', `the switch plan for "${plan.service}" is not a compose-mode plan`);
  }
  return plan;
}
