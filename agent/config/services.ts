// services.toml: the catalog of predefined services this device runs.
// Parsed strictly (unknown keys are errors) so that a typo never silently changes behaviour.
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import * as v from 'valibot';
import { CaissonError, describe } from '../errors.js';
import { NAME_PATTERN, IMAGE_REFERENCE_PATTERN, PLATFORM_PATTERN, COMPOSE_PROJECT_PATTERN, COMPOSE_SERVICE_PATTERN, firstIssue } from './patterns.js';

const HealthCheckSchema = v.strictObject({
  kind: v.picklist(['running', 'container_health', 'http', 'tcp', 'exec']),
  url: v.optional(v.pipe(v.string(), v.regex(/^https?:\/\/[^\s]+$/, 'url must be an http(s) URL'))),
  host: v.optional(v.pipe(v.string(), v.minLength(1))),
  port: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535))),
  command: v.optional(v.pipe(v.array(v.string()), v.minLength(1))),
  expect_status: v.optional(v.pipe(v.number(), v.integer(), v.minValue(100), v.maxValue(599))),
  timeout_secs: v.optional(v.pipe(v.number(), v.minValue(1), v.maxValue(3600)), 60),
  poll_interval_secs: v.optional(v.pipe(v.number(), v.minValue(0.05), v.maxValue(60)), 1),
  stable_secs: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(3600)), 5),
});

/**
 * Seconds the engine gives the old container between SIGTERM and SIGKILL when an update
 * stops it. Unset: the container's own setting (docker run --stop-timeout, compose
 * stop_grace_period), else the engine's 10 s.
 */
const StopTimeoutSchema = v.optional(v.pipe(v.number(), v.integer('stop_timeout_secs must be whole seconds'), v.minValue(0), v.maxValue(3600)));

const ServiceSchema = v.strictObject({
  name: v.pipe(v.string(), v.regex(NAME_PATTERN, 'name must match [a-z0-9][a-z0-9_.-]{0,62}')),
  service_revision: v.pipe(v.string(), v.regex(NAME_PATTERN, 'service_revision must match [a-z0-9][a-z0-9_.-]{0,62}')),
  platform: v.pipe(v.string(), v.regex(PLATFORM_PATTERN, 'platform must look like linux/amd64')),
  runtime_mode: v.picklist(['docker', 'compose']),
  docker: v.optional(
    v.strictObject({
      container_name: v.pipe(v.string(), v.regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/, 'container_name is not a valid container name')),
      image_reference: v.optional(v.pipe(v.string(), v.regex(IMAGE_REFERENCE_PATTERN, 'image_reference is not a valid image reference'))),
      stop_timeout_secs: StopTimeoutSchema,
    }),
  ),
  compose: v.optional(
    v.strictObject({
      project: v.pipe(v.string(), v.regex(COMPOSE_PROJECT_PATTERN, 'project must match [a-z0-9][a-z0-9_-]*')),
      file: v.pipe(v.string(), v.regex(/^\//, 'compose file must be an absolute path')),
      service: v.pipe(v.string(), v.regex(COMPOSE_SERVICE_PATTERN, 'compose service is not a valid name')),
      stop_timeout_secs: StopTimeoutSchema,
    }),
  ),
  /**
   * Services of the catalog this one needs running first: a stack package switches them
   * before it (and rolls them back after it). Unknown names and cycles are config errors.
   */
  depends_on: v.optional(
    v.pipe(v.array(v.pipe(v.string(), v.regex(NAME_PATTERN, 'depends_on lists service names'))), v.maxLength(64, 'depends_on lists at most 64 services')),
  ),
  health_check: v.optional(HealthCheckSchema, { kind: 'running' }),
  rollback: v.optional(v.strictObject({ automatic: v.optional(v.boolean(), true) }), { automatic: true }),
});

const CatalogSchema = v.strictObject({
  catalog_version: v.literal(1),
  services: v.optional(v.array(ServiceSchema), []),
});

export type HealthCheckSpec = v.InferOutput<typeof HealthCheckSchema>;
export type ServiceSpec = v.InferOutput<typeof ServiceSchema>;
export type Catalog = v.InferOutput<typeof CatalogSchema>;

export function parseCatalog(text: string, source = 'services.toml'): Catalog {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    throw new CaissonError('config.invalid', `${source}: ${describe(err)}`);
  }
  const result = v.safeParse(CatalogSchema, raw);
  if (!result.success) throw new CaissonError('config.invalid', `${source}: ${firstIssue(result.issues)}`);
  const catalog = result.output;
  const seen = new Set<string>();
  for (const service of catalog.services) {
    if (seen.has(service.name)) throw new CaissonError('config.invalid', `${source}: service "${service.name}" is listed twice`);
    seen.add(service.name);
    checkModeSection(service, source);
    checkHealthSection(service, source);
  }
  checkDependencies(catalog, source);
  return catalog;
}

export function loadCatalog(path: string): Catalog {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new CaissonError('config.invalid', missing ? `there is no service catalog at ${path}` : `cannot read the service catalog ${path}: ${describe(err)}`, {
      next: missing
        ? `Create it from the example config/services.toml (the demo's is fixtures/demo/services.toml; every key is in docs/services-toml.md), or point to yours with --services FILE or CAISSON_SERVICES=FILE.`
        : 'Fix the file or pass --services FILE (see docs/services-toml.md).',
    });
  }
  return parseCatalog(text, path);
}

export function findService(catalog: Catalog, name: string): ServiceSpec | undefined {
  return catalog.services.find((s) => s.name === name);
}

function checkModeSection(service: ServiceSpec, source: string): void {
  if (service.runtime_mode === 'docker' && !service.docker) {
    throw new CaissonError('config.invalid', `${source}: service "${service.name}" has runtime_mode "docker" but no [services.docker] section`);
  }
  if (service.runtime_mode === 'compose' && !service.compose) {
    throw new CaissonError('config.invalid', `${source}: service "${service.name}" has runtime_mode "compose" but no [services.compose] section`);
  }
}

function checkHealthSection(service: ServiceSpec, source: string): void {
  const hc = service.health_check;
  const where = `${source}: service "${service.name}" health_check`;
  if (hc.kind === 'http' && !hc.url) throw new CaissonError('config.invalid', `${where}: kind "http" needs url`);
  if (hc.kind === 'tcp' && !hc.port) throw new CaissonError('config.invalid', `${where}: kind "tcp" needs port`);
  if (hc.kind === 'exec' && !hc.command) throw new CaissonError('config.invalid', `${where}: kind "exec" needs command (an array)`);
}

/** depends_on names services of this catalog, never the service itself, and forms no cycle. */
function checkDependencies(catalog: Catalog, source: string): void {
  const byName = new Map(catalog.services.map((s) => [s.name, s]));
  for (const service of catalog.services) {
    const seen = new Set<string>();
    for (const dep of service.depends_on ?? []) {
      if (!byName.has(dep)) throw new CaissonError('config.invalid', `${source}: service "${service.name}" depends_on "${dep}", which is not in the catalog`);
      if (seen.has(dep)) throw new CaissonError('config.invalid', `${source}: service "${service.name}" lists "${dep}" twice in depends_on`);
      seen.add(dep);
    }
  }
  // depth-first search; a service met again while still on the path closes a cycle
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      const cycle = [...path.slice(path.indexOf(name)), name].join(' -> ');
      throw new CaissonError('config.invalid', `${source}: depends_on forms a cycle: ${cycle}`);
    }
    state.set(name, 'visiting');
    for (const dep of byName.get(name)!.depends_on ?? []) visit(dep, [...path, name]);
    state.set(name, 'done');
  };
  for (const service of catalog.services) visit(service.name, []);
}

/**
 * Every service `name` depends on, directly or through others (the catalog was checked for
 * cycles when it loaded).
 */
export function dependenciesOf(catalog: Catalog, name: string): Set<string> {
  const out = new Set<string>();
  const walk = (n: string): void => {
    for (const dep of findService(catalog, n)?.depends_on ?? []) {
      if (!out.has(dep)) {
        out.add(dep);
        walk(dep);
      }
    }
  };
  walk(name);
  return out;
}
