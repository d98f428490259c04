// What the status page and its local API show, read from the same SQLite state the CLI
// uses, over a read-only connection of its own: in WAL mode a reader never blocks the
// pipeline's writes and never takes the state-dir lock, so `caisson` commands keep working
// while the page is open. Container state comes from the engine, cached for a moment so
// many open pages cost the engine one inspection per service per cache period.
//
// Shapes here are the documented local API (docs/web.md): add fields, never rename.
// Container environment values, labels and mounts are never read into these views.
import type { Catalog, ServiceSpec } from '../config/services.js';
import type { ProgressEvent } from '../log/events.js';
import { STATE_TABLE } from '../pipeline/states.js';
import type { Journal, UpdateRow } from '../store/journal.js';
import type { ContainerInfo } from '../health/probes.js';
import type { RuntimeState, ServiceDriver } from '../runtime/driver.js';

export const API_VERSION = 1;
const SERVICE_CACHE_MS = 2000;
export const MAX_HISTORY = 200;

export interface ServiceView {
  name: string;
  runtime_mode: string;
  service_revision: string;
  health_check: string;
  /** The package version Caisson installed, if any. */
  version: string | null;
  container: {
    status: string;
    running: boolean;
    /** Docker's health state when the image has a HEALTHCHECK: healthy, unhealthy, starting; else "none". */
    health: string;
    image: string | null;
    restart_count: number | null;
  };
  last_result: { update_id: string; outcome: string | null; state: string; at: string; error_code: string | null } | null;
}

export interface StepView {
  state: string;
  /** What the step means, in plain words. */
  text: string;
  at: string;
  detail: string | null;
}

export interface UpdateView {
  update_id: string;
  kind: string;
  source: string;
  package_file: string;
  service: string | null;
  from_version: string | null;
  to_version: string | null;
  state: string;
  state_text: string;
  /** null while the update runs. */
  outcome: string | null;
  /** One sentence for people: what happened and where things stand. */
  summary: string;
  error: { code: string; message: string; next: string } | null;
  started_at: string;
  finished_at: string | null;
  steps: StepView[];
}

export interface LiveProgress {
  /** staging, hashing, importing, unpacking: bytes of the current phase. */
  bytes?: { phase: string; done: number; total: number };
  /** The health window: seconds left, and how long the new version has passed. */
  health?: { seconds_left: number; note: string | null };
}

export interface LiveView {
  /** The running update, or the latest finished one (outcome set). */
  update: UpdateView | null;
  running: boolean;
  progress: LiveProgress | null;
}

export const OUTCOME_TEXT: Record<string, string> = {
  committed: 'Updated: the new version runs and passed its health check.',
  valid: 'Checked: the package is valid; nothing was changed.',
  already_installed: 'Nothing to do: this package was already installed.',
  rejected: 'Refused before anything changed: the service was not touched.',
  rolled_back: 'Failed, and rolled back: the previous version runs again.',
  rollback_failed: 'Failed, and the previous version could not be restored: a person is needed.',
};

export function stepText(state: string): string {
  if (state.startsWith('closed:')) return OUTCOME_TEXT[state.slice(7)] ?? state;
  const [base, sub] = state.split('.');
  const text = (STATE_TABLE as Record<string, { announces: string } | undefined>)[base!]?.announces ?? base!;
  return sub ? `${text} (${sub.replace(/_/g, ' ')})` : text;
}

export function updateView(row: UpdateRow, steps: { state: string; at: string; detail: string | null }[]): UpdateView {
  const error = row.error_code ? { code: row.error_code, message: row.error_message ?? '', next: row.error_next ?? '' } : null;
  const summary = row.outcome
    ? `${OUTCOME_TEXT[row.outcome] ?? row.outcome}${error ? ` Reason: ${error.message}` : ''}`
    : `In progress: ${stepText(row.state)}.`;
  return {
    update_id: row.id,
    kind: row.kind,
    source: row.source,
    package_file: row.package_file,
    // a stack update names its stack (its services are in its steps, `<state>.<service>`)
    service: row.service ?? (row.stack ? `stack ${row.stack}` : null),
    from_version: row.from_version,
    to_version: row.to_version,
    state: row.state,
    state_text: stepText(row.state),
    outcome: row.outcome,
    summary,
    error,
    started_at: row.started_at,
    finished_at: row.finished_at,
    steps: steps.map((s) => ({ state: s.state, text: stepText(s.state), at: s.at, detail: s.detail })),
  };
}

export interface StatusSourceOptions {
  /** The agent's own journal: the page reads history through store/, in the agent's process. */
  journal: Journal;
  catalog: Catalog;
  /** A container's inspect data, for its health (the engine port's read). */
  container: (id: string) => Promise<ContainerInfo | undefined>;
  driverFor: (s: ServiceSpec) => ServiceDriver;
}

export class StatusSource {
  private servicesCache: { at: number; views: Promise<ServiceView[]> } | undefined;
  private progress: LiveProgress = {};

  constructor(private readonly opts: StatusSourceOptions) {}

  /** Feed a progress event of the update that runs now (the pipeline runs one at a time). */
  onProgress(e: ProgressEvent): void {
    // the pipeline calls done() after the health window and at the end of every update
    if (e.kind === 'done') this.progress = {};
    else if (e.kind === 'bytes') this.progress = { ...this.progress, bytes: { phase: e.phase, done: e.done, total: e.total } };
    // the health window comes after the image: its bytes are history by then
    else if (e.kind === 'countdown') this.progress = { health: { seconds_left: Math.max(0, Math.ceil(e.seconds_left)), note: e.note?.replace(/^· /, '') ?? null } };
  }

  services(): Promise<ServiceView[]> {
    const now = Date.now();
    if (!this.servicesCache || now - this.servicesCache.at > SERVICE_CACHE_MS) {
      this.servicesCache = { at: now, views: this.readServices() };
    }
    return this.servicesCache.views;
  }

  /** Forget cached container state (after an update finished). */
  invalidate(): void {
    this.servicesCache = undefined;
  }

  history(limit: number): UpdateView[] {
    const rows = this.opts.journal.list({ limit: Math.min(Math.max(1, limit), MAX_HISTORY) });
    return rows.map((r) => updateView(r, this.steps(r.id)));
  }

  live(): LiveView {
    const row = this.opts.journal.currentOrLastUpdate();
    if (!row) return { update: null, running: false, progress: null };
    const running = row.closed === 0;
    return { update: updateView(row, this.steps(row.id)), running, progress: running ? { ...this.progress } : null };
  }

  close(): void {
    // the journal belongs to the agent's pipeline, which closes it
  }

  private steps(id: string): { state: string; at: string; detail: string | null }[] {
    return this.opts.journal.steps(id).map((s) => ({ state: s.state, at: s.at, detail: s.detail ?? null }));
  }

  private async readServices(): Promise<ServiceView[]> {
    const views: ServiceView[] = [];
    for (const spec of this.opts.catalog.services) {
      const installed = this.opts.journal.installed(spec.name);
      const last = this.opts.journal.lastUpdateFor(spec.name);
      views.push({
        name: spec.name,
        runtime_mode: spec.runtime_mode,
        service_revision: spec.service_revision,
        health_check: spec.health_check.kind,
        version: installed?.package_version ?? null,
        container: await this.container(spec),
        last_result: last
          ? { update_id: last.id, outcome: last.outcome, state: last.state, at: last.finished_at ?? last.started_at, error_code: last.error_code }
          : null,
      });
    }
    return views;
  }

  private async container(spec: ServiceSpec): Promise<ServiceView['container']> {
    let state: RuntimeState;
    try {
      state = await this.opts.driverFor(spec).inspect();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      return { status: `unknown (${typeof code === 'string' ? code : 'docker.error'})`, running: false, health: 'unknown', image: null, restart_count: null };
    }
    let health = 'none';
    if (state.containerId) {
      try {
        const info = await this.opts.container(state.containerId);
        health = info?.State?.Health?.Status ?? 'none';
      } catch {
        health = 'unknown';
      }
    }
    return { status: state.status, running: state.running, health, image: state.imageRef ?? null, restart_count: state.restartCount ?? null };
  }
}
