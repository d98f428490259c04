// Turn `docker inspect` of a container into create options that recreate it identically,
// except for the image. Values the container merely inherited from its old image (Env,
// Cmd, Entrypoint, Labels, ExposedPorts, Volumes, Healthcheck, WorkingDir, User, …) are
// NOT carried over as overrides: the new image's defaults must win for those. Only what
// differs from the old image's config is kept.
import type Docker from 'dockerode';

/** The parts of `docker image inspect` .Config that a container inherits. */
export interface ImageConfigLike {
  Env?: string[] | null;
  Cmd?: string[] | null;
  Entrypoint?: string[] | string | null;
  WorkingDir?: string | null;
  User?: string | null;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, unknown> | null;
  Volumes?: Record<string, unknown> | null;
  Healthcheck?: unknown;
  StopSignal?: string | null;
  Shell?: string[] | null;
  OnBuild?: string[] | null;
}

/** What we read from `docker inspect` of a container (a subset of dockerode's type, loosely typed). */
export interface ContainerInspectLike {
  Id: string;
  Name: string;
  Config: ImageConfigLike & {
    Hostname?: string;
    Domainname?: string;
    AttachStdin?: boolean;
    AttachStdout?: boolean;
    AttachStderr?: boolean;
    Tty?: boolean;
    OpenStdin?: boolean;
    StdinOnce?: boolean;
    Image?: string;
    NetworkDisabled?: boolean;
    MacAddress?: string;
    StopTimeout?: number;
    ArgsEscaped?: boolean;
  };
  HostConfig: Record<string, unknown> & { NetworkMode?: string; Binds?: string[] | null; Mounts?: MountSpec[] | null };
  Mounts?: Array<{ Type?: string; Name?: string; Source?: string; Destination: string; RW?: boolean; Driver?: string }>;
  NetworkSettings?: { Networks?: Record<string, EndpointLike | null> | null };
}

interface MountSpec {
  Type?: string;
  Source?: string;
  Target?: string;
  ReadOnly?: boolean;
  [key: string]: unknown;
}

interface EndpointLike {
  IPAMConfig?: Record<string, unknown> | null;
  Links?: string[] | null;
  Aliases?: string[] | null;
  DriverOpts?: Record<string, string> | null;
  MacAddress?: string;
  NetworkID?: string;
}

export interface EndpointConfig {
  IPAMConfig?: Record<string, unknown>;
  Links?: string[];
  Aliases?: string[];
  DriverOpts?: Record<string, string>;
}

export interface RecreateSpec {
  /** Options for POST /containers/create (without `name`; Image set to the new reference). */
  create: Docker.ContainerCreateOptions;
  /** Networks to connect after create (the engine takes only one at create time). */
  connect: Array<{ network: string; endpoint: EndpointConfig }>;
}

/** HostConfig fields that describe the container instance, not its configuration. */
const HOSTCONFIG_DROP = new Set(['ContainerIDFile']);

const BUILTIN_NETWORK_MODES = new Set(['default', 'bridge', 'host', 'none']);

/**
 * Build create options for a copy of `container` running `newImage`.
 * `oldImage` is the .Config of the image the container was created from.
 */
export function recreateSpec(container: ContainerInspectLike, oldImage: ImageConfigLike, newImage: string): RecreateSpec {
  const c = container.Config;
  const img = oldImage ?? {};
  const create: Docker.ContainerCreateOptions & Record<string, unknown> = { Image: newImage };

  // --- identity --------------------------------------------------------------------------------
  const networkMode = String(container.HostConfig.NetworkMode ?? 'default');
  const sharesUts = networkMode === 'host' || networkMode.startsWith('container:');
  const defaultHostname = container.Id.slice(0, 12);
  if (c.Hostname && c.Hostname !== defaultHostname && !sharesUts && container.HostConfig.UTSMode !== 'host') {
    create.Hostname = c.Hostname;
  }
  if (c.Domainname) create.Domainname = c.Domainname;
  if (c.MacAddress) create.MacAddress = c.MacAddress;

  // --- process ---------------------------------------------------------------------------------
  if (differs(c.User, img.User)) create.User = c.User ?? '';
  if (differs(c.WorkingDir, img.WorkingDir)) create.WorkingDir = c.WorkingDir ?? '';
  const env = envOverrides(c.Env, img.Env);
  if (env.length) create.Env = env;

  const entrypointChanged = differs(asList(c.Entrypoint), asList(img.Entrypoint));
  const cmdChanged = differs(asList(c.Cmd), asList(img.Cmd));
  if (entrypointChanged || (cmdChanged && asList(c.Cmd).length === 0)) {
    // An explicit entrypoint resets the image's Cmd at create, so Cmd must travel with it
    // (an empty Cmd can only be expressed together with an entrypoint).
    create.Entrypoint = asList(c.Entrypoint);
    create.Cmd = asList(c.Cmd);
  } else if (cmdChanged) {
    create.Cmd = asList(c.Cmd);
  }
  if (differs(c.StopSignal, img.StopSignal)) create.StopSignal = c.StopSignal ?? undefined;
  if (typeof c.StopTimeout === 'number') create.StopTimeout = c.StopTimeout;
  if (c.Healthcheck !== undefined && c.Healthcheck !== null && differs(c.Healthcheck, img.Healthcheck)) {
    create.Healthcheck = c.Healthcheck as Docker.HealthConfig;
  }
  if (c.Shell && differs(c.Shell, img.Shell)) create.Shell = c.Shell;

  // --- stdio -----------------------------------------------------------------------------------
  for (const key of ['AttachStdin', 'AttachStdout', 'AttachStderr', 'Tty', 'OpenStdin', 'StdinOnce'] as const) {
    if (typeof c[key] === 'boolean') create[key] = c[key];
  }
  if (c.NetworkDisabled) create.NetworkDisabled = true;

  // --- metadata --------------------------------------------------------------------------------
  const labels = mapOverrides(c.Labels, img.Labels);
  if (Object.keys(labels).length) create.Labels = labels;
  const ports = keyOverrides(c.ExposedPorts, img.ExposedPorts);
  if (ports.length) create.ExposedPorts = Object.fromEntries(ports.map((p) => [p, {}]));
  const volumes = keyOverrides(c.Volumes, img.Volumes);
  if (volumes.length) create.Volumes = Object.fromEntries(volumes.map((p) => [p, {}]));

  // --- host config -----------------------------------------------------------------------------
  const host: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(container.HostConfig)) {
    if (HOSTCONFIG_DROP.has(key) || value === undefined) continue;
    host[key] = clone(value);
  }
  if (Array.isArray(host.Links)) host.Links = (host.Links as string[]).map(normaliseLink);
  host.Mounts = keepVolumeData(container, (host.Mounts as MountSpec[] | null | undefined) ?? null);
  if ((host.Mounts as MountSpec[]).length === 0) delete host.Mounts;
  create.HostConfig = host as Docker.HostConfig;

  // --- networks --------------------------------------------------------------------------------
  const connect: RecreateSpec['connect'] = [];
  const networks = container.NetworkSettings?.Networks ?? {};
  const names = Object.keys(networks);
  if (!BUILTIN_NETWORK_MODES.has(networkMode) || networkMode === 'bridge' || networkMode === 'default') {
    if (!networkMode.startsWith('container:') && names.length) {
      const primaryName = primaryNetwork(networkMode, names);
      const endpoints: Record<string, EndpointConfig> = {};
      if (primaryName) endpoints[primaryName] = endpointFor(networks[primaryName], primaryName, container.Id, c.Hostname);
      create.NetworkingConfig = { EndpointsConfig: endpoints as Docker.EndpointsConfig };
      for (const name of names) {
        if (name === primaryName) continue;
        connect.push({ network: name, endpoint: endpointFor(networks[name], name, container.Id, c.Hostname) });
      }
    }
  }
  return { create, connect };
}

function primaryNetwork(networkMode: string, names: string[]): string | undefined {
  if (networkMode === 'default' || networkMode === 'bridge') return names.includes('bridge') ? 'bridge' : names[0];
  if (names.includes(networkMode)) return networkMode;
  return names[0];
}

function endpointFor(ep: EndpointLike | null | undefined, network: string, containerId: string, hostname: string | undefined): EndpointConfig {
  const out: EndpointConfig = {};
  if (!ep) return out;
  if (ep.IPAMConfig && Object.values(ep.IPAMConfig).some((v) => v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0))) {
    out.IPAMConfig = clone(ep.IPAMConfig);
  }
  if (ep.Links?.length) out.Links = [...ep.Links];
  // the engine adds the short container ID as an alias on user-defined networks; it must not
  // be carried (it names the OLD container). The default bridge takes no aliases at all.
  // It also adds the hostname (which it re-adds for the new container, after the short ID).
  const shortId = containerId.slice(0, 12);
  const aliases = (ep.Aliases ?? []).filter((a) => a !== shortId && a !== containerId && a !== hostname);
  if (aliases.length && network !== 'bridge') out.Aliases = aliases;
  if (ep.DriverOpts && Object.keys(ep.DriverOpts).length) out.DriverOpts = { ...ep.DriverOpts };
  return out;
}

/**
 * Anonymous volumes (image VOLUME or `-v /path`) would be created afresh for a new container
 * and their data left behind; mount the very same volumes by name instead, as Compose does.
 * Anonymous `--mount type=volume` entries get their volume name filled in for the same reason.
 */
function keepVolumeData(container: ContainerInspectLike, mounts: MountSpec[] | null): MountSpec[] {
  const out = (mounts ?? []).map((m) => ({ ...m }));
  const byTarget = new Map<string, { Name?: string; RW?: boolean; Type?: string }>();
  for (const m of container.Mounts ?? []) byTarget.set(m.Destination, m);
  for (const m of out) {
    if ((m.Type ?? 'volume') === 'volume' && !m.Source && m.Target) {
      const used = byTarget.get(m.Target);
      if (used?.Name) m.Source = used.Name;
    }
  }
  const covered = new Set<string>();
  for (const m of out) if (m.Target) covered.add(m.Target);
  for (const bind of (container.HostConfig.Binds as string[] | null | undefined) ?? []) {
    const target = bindTarget(bind);
    if (target) covered.add(target);
  }
  for (const t of Object.keys((container.HostConfig.Tmpfs as Record<string, string> | null | undefined) ?? {})) covered.add(t);
  for (const m of container.Mounts ?? []) {
    if (m.Type !== 'volume' || !m.Name || covered.has(m.Destination)) continue;
    out.push({ Type: 'volume', Source: m.Name, Target: m.Destination, ReadOnly: m.RW === false });
    covered.add(m.Destination);
  }
  return out;
}

/** "src:/dst[:opts]" → "/dst" (Linux bind syntax). */
function bindTarget(bind: string): string | undefined {
  const parts = bind.split(':');
  return parts.length >= 2 ? parts[1] : undefined;
}

/** Inspect shows links as "/other:/self/alias"; create takes "other:alias". */
function normaliseLink(link: string): string {
  const m = /^\/?([^:]+):\/?(?:[^/]+\/)*([^/]+)$/.exec(link);
  if (!m) return link;
  return `${m[1]}:${m[2]}`;
}

/** Container env entries that the image did not already provide with the same value. */
export function envOverrides(containerEnv: string[] | null | undefined, imageEnv: string[] | null | undefined): string[] {
  const inherited = new Set(imageEnv ?? []);
  return (containerEnv ?? []).filter((e) => !inherited.has(e));
}

function mapOverrides(container: Record<string, string> | null | undefined, image: Record<string, string> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(container ?? {})) {
    if (!image || image[k] !== v) out[k] = v;
  }
  return out;
}

function keyOverrides(container: Record<string, unknown> | null | undefined, image: Record<string, unknown> | null | undefined): string[] {
  return Object.keys(container ?? {}).filter((k) => !image || !(k in image));
}

function asList(v: string[] | string | null | undefined): string[] {
  if (v === null || v === undefined) return [];
  return typeof v === 'string' ? [v] : v;
}

function differs(a: unknown, b: unknown): boolean {
  return JSON.stringify(normalise(a)) !== JSON.stringify(normalise(b));
}

function normalise(v: unknown): unknown {
  if (v === null || v === undefined || v === '') return null;
  if (Array.isArray(v)) return v.length ? v.map(normalise) : null;
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return entries.length ? Object.fromEntries(entries.map(([k, x]) => [k, normalise(x)])) : null;
  }
  return v;
}

function clone<T>(v: T): T {
  return v === null || typeof v !== 'object' ? v : (JSON.parse(JSON.stringify(v)) as T);
}
