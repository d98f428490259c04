// The engine port: everything the update pipeline asks of the container engine, in one
// interface. The pipeline holds an Engine and never a Docker client or a runtime mode;
// createDockerEngine is the real one (Docker's API, plus Compose for compose-mode
// services), and the unit tests build the pipeline on an in-memory fake of the same port.
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import type { ServiceSpec } from '../config/services.js';
import { toCaissonError } from '../errors.js';
import type { ContainerInfo, ContainerReader } from '../health/probes.js';
import { dockerError, engineDataRoot, pingDocker, statusOf } from './docker-client.js';
import { loadImageFromFile, type LoadProgressEvent } from './image-load.js';
import { restoreTags, snapshotTags } from './image-tags.js';
import type { ServiceDriver } from './driver.js';
import { createComposeDriver } from './compose-driver.js';
import type { ComposeCommandSetting } from './compose-command.js';
import { createDockerDriver } from './docker-driver.js';

export type { LoadProgressEvent } from './image-load.js';

/** An image as the engine reports it. */
export type ImageInfo = Docker.ImageInspectInfo;

export interface LoadImageOptions {
  /** Bytes of the archive handed to the engine so far. */
  onBytes?: (done: number, total: number) => void;
  /** The engine has the whole archive; the file is not read again. */
  onUploaded?: () => void;
  /** The engine's own progress events (layers being unpacked). */
  onProgress?: (event: LoadProgressEvent) => void;
}

export interface Engine extends ContainerReader {
  /** Wait (bounded) until the engine answers; throws docker.unreachable. */
  ping(opts?: { waitMs?: number }): Promise<void>;
  /** Where the engine keeps images and containers on disk, when it says and it is visible here. */
  dataRoot(): Promise<string | undefined>;
  /** Every tag the engine knows: reference → image ID. */
  tags(): Promise<Map<string, string>>;
  /** Put every tag in `after` that differs from `before` back as it was (moved back, new removed). */
  restoreTags(before: Map<string, string>, after: Map<string, string>): Promise<void>;
  /** What the engine reports for an image (`docker image inspect`), or undefined when it has none. */
  image(id: string): Promise<ImageInfo | undefined>;
  /** Import a `docker save` archive; throws docker.load_failed or docker.unreachable. */
  loadImage(path: string, opts?: LoadImageOptions): Promise<void>;
  /** Start a stopped container (a service an engine restart left stopped); throws docker.error. */
  startContainer(id: string): Promise<void>;
  /** The mechanics of switching one service and undoing the switch, for its runtime mode. */
  driverFor(service: ServiceSpec): ServiceDriver;
}

export interface DockerEngineOptions {
  stateDir: string;
  composeCommand?: ComposeCommandSetting;
}

/** The real engine: a Docker daemon reached through dockerode. */
export function createDockerEngine(docker: Docker, opts: DockerEngineOptions): Engine {
  return {
    ping: (o) => pingDocker(docker, { waitMs: o?.waitMs }),
    dataRoot: () => engineDataRoot(docker),
    tags: () => snapshotTags(docker),
    restoreTags: async (before, after) => {
      await restoreTags(docker, before, after);
    },
    image: async (id) => {
      try {
        return await docker.getImage(id).inspect();
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        throw dockerError(err, `inspecting image ${id.replace(/^sha256:/, '').slice(0, 12)}`);
      }
    },
    loadImage: async (path, o) => {
      await loadImageFromFile(docker, path, o);
    },
    startContainer: async (id) => {
      try {
        await docker.getContainer(id).start();
      } catch (err) {
        throw dockerError(err, `starting container ${id.slice(0, 12)}`);
      }
    },
    container: (id) => inspectContainer(docker, id),
    exec: (id, command) => execIn(docker, id, command),
    driverFor: (service) => createDriver(service, { docker, ...opts }),
  };
}

export interface CreateDriverOptions extends DockerEngineOptions {
  docker: Docker;
}

/** The driver for a service's runtime_mode: the one place that picks a mode. */
export function createDriver(service: ServiceSpec, opts: CreateDriverOptions): ServiceDriver {
  if (service.runtime_mode === 'compose') {
    return createComposeDriver(service, {
      docker: opts.docker,
      stateDir: opts.stateDir,
      composeCommand: opts.composeCommand ?? 'auto',
      stopTimeoutSecs: service.compose?.stop_timeout_secs,
    });
  }
  return createDockerDriver(service, { docker: opts.docker, stopTimeoutSecs: service.docker?.stop_timeout_secs });
}

async function inspectContainer(docker: Docker, id: string): Promise<ContainerInfo | undefined> {
  try {
    return await docker.getContainer(id).inspect();
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw toCaissonError(err, 'docker.error');
  }
}

/** Output kept from an exec, for messages. */
const EXEC_OUTPUT_LIMIT = 2000;

async function execIn(docker: Docker, containerId: string, command: string[]): Promise<{ exitCode: number | undefined; output: string }> {
  const exec = await docker.getContainer(containerId).exec({ Cmd: command, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  let output = '';
  const sink = new PassThrough();
  sink.on('data', (d: Buffer) => {
    if (output.length < EXEC_OUTPUT_LIMIT) output += d.toString('utf8');
  });
  await new Promise<void>((resolve) => {
    docker.modem.demuxStream(stream, sink, sink);
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', () => resolve());
  });
  let info = await exec.inspect();
  for (let i = 0; i < 20 && info.Running; i++) {
    await new Promise((r) => setTimeout(r, 50));
    info = await exec.inspect();
  }
  return { exitCode: info.ExitCode ?? undefined, output };
}
