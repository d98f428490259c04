// Read-only commands: service list|show, history list|show. They take no lock, so they
// work while the agent runs, and they create nothing: no state folder, database or log
// (a machine with no state yet gets a plain sentence saying so).
import { Command } from 'commander';
import { loadCatalog, findService } from '../config/services.js';
import type { ServiceSpec } from '../config/services.js';
import { CaissonError, toCaissonError } from '../errors.js';
import { loadTrustedKeys, signaturePolicyLine } from '../package/signature.js';
import { openDatabaseReadOnly } from '../store/db.js';
import { Journal, rowToResult } from '../store/journal.js';
import type { RuntimeState } from '../runtime/driver.js';
import { emit, runCommand, withCommonOptions, type CommonOptions } from './common.js';
import { table } from './format.js';

interface ServiceView {
  name: string;
  runtime_mode: string;
  service_revision: string;
  platform: string;
  status: string;
  running_image?: string;
  image_id?: string;
  container_id?: string;
  installed_version?: string;
  installed_package_id?: string;
  /** Installed by a stack package: the stack's name and version. */
  installed_stack?: { name: string; version: string };
  last_update?: { update_id: string; outcome: string | null; at: string; error_code?: string };
}

export function serviceCommand(): Command {
  const svc = new Command('service').description('the predefined services and what they run');
  withCommonOptions(svc.command('list').description('catalog, running image, installed version, last result'))
    .action((opts: CommonOptions) =>
      runCommand(opts, async () => {
        const views = await describeServices(opts, loadCatalog(opts.services).services);
        const rows = [['SERVICE', 'MODE', 'STATUS', 'IMAGE', 'VERSION', 'STACK', 'LAST RESULT']];
        for (const v of views) {
          rows.push([
            v.name,
            v.runtime_mode,
            v.status,
            v.running_image ?? '-',
            v.installed_version ?? '-',
            v.installed_stack ? `${v.installed_stack.name} ${v.installed_stack.version}` : '-',
            v.last_update ? `${v.last_update.outcome ?? 'open'} ${v.last_update.at}` : '-',
          ]);
        }
        emit(opts, views, `${table(rows)}\n${signaturesLine(opts.trustedKeys)}`);
        return 0;
      }),
    );
  withCommonOptions(svc.command('show').argument('<name>').description('one service in detail'))
    .action((name: string, opts: CommonOptions) =>
      runCommand(opts, async () => {
        const spec = findService(loadCatalog(opts.services), name);
        if (!spec) throw new CaissonError('manifest.unknown_service', `no service "${name}" in ${opts.services}`, { next: 'See `caisson service list`.' });
        const [view] = await describeServices(opts, [spec]);
        const shown = {
          ...view!,
          installed_version: view!.installed_version ?? '- (nothing installed by Caisson yet)',
          last_update: view!.last_update ?? '- (no update yet)',
          health_check: spec.health_check.kind,
        };
        const lines = Object.entries(shown)
          .map(([k, v]) => `${k.padEnd(26)} ${v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
          .join('\n');
        emit(opts, { ...view, spec }, lines);
        return 0;
      }),
    );
  return svc;
}

/** Whether this device requires signatures, as every start says it (or why it cannot tell). */
function signaturesLine(dir: string): string {
  try {
    return signaturePolicyLine(loadTrustedKeys(dir).length, dir);
  } catch (err) {
    return `signatures: ${toCaissonError(err).message}`;
  }
}

export function historyCommand(): Command {
  const history = new Command('history').description('the local audit history of updates and validations');
  withCommonOptions(history.command('list').description('most recent first'))
    .option('--limit <n>', 'how many', '20')
    .option('--service <name>', 'only this service')
    .action((opts: CommonOptions & { limit: string; service?: string }) =>
      runCommand(opts, async () => {
        const journal = readJournal(opts.stateDir);
        if (!journal) {
          emit(opts, [], `no history yet: nothing was validated or loaded with the state folder ${opts.stateDir}`);
          return 0;
        }
        const rows = journal.list({ limit: Number(opts.limit) || 20, service: opts.service });
        const results = rows.map((r) => (r.stack ? journal.toResult(r.id) : rowToResult(r, [])));
        journal.db.close();
        const lines = [['ID', 'KIND', 'SERVICE', 'VERSION', 'OUTCOME', 'ERROR', 'STARTED']];
        for (const [i, r] of rows.entries()) {
          const service = r.stack ? `stack ${r.stack} (${(results[i]!.services ?? []).map((m) => m.service).join(', ')})` : (r.service ?? '-');
          lines.push([r.id, r.kind, service, r.package_version ?? '-', r.outcome ?? `open (${r.state})`, r.error_code ?? '-', r.started_at]);
        }
        emit(opts, results.map((r, i) => ({ ...r, kind: rows[i]!.kind, state: rows[i]!.state })), rows.length ? table(lines) : 'no history yet');
        return 0;
      }),
    );
  withCommonOptions(history.command('show').argument('<id>', 'a record ID from `caisson history list`, or "last"').description('one update with every step'))
    .action((id: string, opts: CommonOptions) =>
      runCommand(opts, async () => {
        const journal = readJournal(opts.stateDir);
        if (!journal) {
          throw new CaissonError('usage.invalid', `there is no history record ${id}: nothing was validated or loaded with the state folder ${opts.stateDir}`, {
            next: 'Load or validate a package first, or pass the --state-dir that has the history.',
          });
        }
        const row = id === 'last' ? journal.list({ limit: 1 })[0] : journal.get(id);
        if (!row) throw new CaissonError('usage.invalid', `there is no history record ${id}`, { next: 'See `caisson history list`.' });
        id = row.id;
        const result = { ...journal.toResult(id), kind: row.kind, state: row.state };
        const head = row.stack
          ? `${row.id} ${row.kind} ${row.outcome ?? `open (${row.state})`} stack ${row.stack} ${row.package_version ?? ''}`
          : `${row.id} ${row.kind} ${row.outcome ?? `open (${row.state})`} ${row.service ?? ''} ${row.from_version ?? ''} → ${row.to_version ?? ''}`;
        const err = result.error ? `\nerror ${result.error.code}: ${result.error.message}\nnext: ${result.error.next}` : '';
        // a stack: each service with its versions and where it ended, then the steps (a
        // service's own steps are named <state>.<service>[.<step>])
        const services = (result.services ?? [])
          .map((m) => `  ${m.service}  ${m.from_version ?? m.from_image ?? '-'} → ${m.to_version ?? m.to_image ?? '-'}  ${m.state}`)
          .join('\n');
        const steps = result.steps.map((s) => `  ${s.at}  ${s.state}${s.detail ? `  ${s.detail}` : ''}`).join('\n');
        emit(opts, result, `${head}\npackage ${row.package_file} ${row.package_id ?? ''}${err}${services ? `\nservices (in switch order):\n${services}` : ''}\nsteps:\n${steps}`);
        return 0;
      }),
    );
  return history;
}

/** The history of a state folder, read-only; undefined when it has none yet. */
function readJournal(stateDir: string): Journal | undefined {
  const db = openDatabaseReadOnly(stateDir);
  return db ? new Journal(db) : undefined;
}

async function describeServices(opts: CommonOptions, specs: ServiceSpec[]): Promise<ServiceView[]> {
  // the engine client only here: `caisson history` never loads it
  const { connectDocker } = await import('../runtime/docker-client.js');
  const { createDriver } = await import('../runtime/index.js');
  const journal = readJournal(opts.stateDir);
  const docker = connectDocker(opts.dockerSocket);
  const views: ServiceView[] = [];
  for (const spec of specs) {
    let state: RuntimeState;
    try {
      state = await createDriver(spec, { docker, stateDir: opts.stateDir, composeCommand: 'auto' }).inspect();
    } catch (err) {
      state = { running: false, status: `unknown (${err instanceof CaissonError ? err.code : 'docker.error'})` };
    }
    const installed = journal?.installed(spec.name);
    const last = journal?.lastUpdateFor(spec.name);
    views.push({
      name: spec.name,
      runtime_mode: spec.runtime_mode,
      service_revision: spec.service_revision,
      platform: spec.platform,
      status: state.status,
      running_image: state.imageRef,
      image_id: state.imageId,
      container_id: state.containerId,
      installed_version: installed?.package_version,
      installed_package_id: installed?.package_id,
      installed_stack: installed?.stack && installed.stack_version ? { name: installed.stack, version: installed.stack_version } : undefined,
      last_update: last ? { update_id: last.id, outcome: last.outcome, at: last.finished_at ?? last.started_at, ...(last.error_code ? { error_code: last.error_code } : {}) } : undefined,
    });
  }
  journal?.db.close();
  return views;
}
