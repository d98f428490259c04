// Which Docker Compose to run (v2 `docker compose`, else `docker-compose`), and running it:
// without a shell, with a deadline, never throwing on a non-zero exit.
import { execFile } from 'node:child_process';
import { CaissonError } from '../errors.js';

export type ComposeCommandSetting = 'auto' | 'docker compose' | 'docker-compose';

/**
 * Which compose command to use: v2 (`docker compose`) if it works, else `docker-compose`
 * (v1, or a v2 binary under that name). Compose v1 (1.x) reads image fields Docker Engine 25
 * and later no longer report and fails on every recreate (KeyError: 'ContainerConfig'), so
 * with such an engine a v1 is refused up front with the fix, not found out mid-update.
 */
export async function detectComposeCommand(
  setting: ComposeCommandSetting,
  env: NodeJS.ProcessEnv = process.env,
  engineVersion?: () => Promise<string | undefined>,
): Promise<string[]> {
  const v2 = ['docker', 'compose'];
  const v1 = ['docker-compose'];
  const candidates = setting === 'docker compose' ? [v2] : setting === 'docker-compose' ? [v1] : [v2, v1];
  const tried: string[] = [];
  for (const cmd of candidates) {
    const r = await run(cmd[0]!, [...cmd.slice(1), 'version', '--short'], env, 30_000);
    if (r.code === 0) {
      const version = r.stdout.trim().replace(/^v/, '');
      if (/^1\./.test(version)) {
        const engine = await engineVersion?.();
        if (engine && engineMajor(engine) >= FIRST_ENGINE_WITHOUT_V1) {
          throw new CaissonError('compose.unavailable', `\`${cmd.join(' ')}\` is Compose v1 ${version}, which cannot recreate containers on Docker Engine ${engine} (it fails on the missing ContainerConfig field)`, {
            next: 'Install Compose v2 (the docker-compose-plugin package, or docker-compose 2.x) on the device; Caisson then uses `docker compose`.',
          });
        }
      }
      return cmd;
    }
    tried.push(`\`${cmd.join(' ')} version\`: ${lastLines(r.stderr || r.stdout) || `exit ${r.code}`}`);
  }
  throw new CaissonError('compose.unavailable', `no usable Docker Compose (${tried.join('; ')})`, {
    next: 'Install Docker Compose v2 (docker-compose-plugin, or docker-compose 2.x), or set compose_command in agent.toml.',
  });
}

/** The first Docker Engine release whose image inspect lacks what Compose v1 needs. */
const FIRST_ENGINE_WITHOUT_V1 = 25;

function engineMajor(version: string): number {
  const m = /^(\d+)\./.exec(version);
  return m ? Number(m[1]) : 0;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command without a shell; never rejects (a failure to start is exit 127). */
export function run(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: unknown; killed?: boolean };
      const code = typeof e.code === 'number' ? e.code : 127;
      const why = typeof e.code === 'string' ? `${e.code}: ${e.message}` : e.killed ? `timed out after ${timeoutMs} ms` : '';
      resolve({ code, stdout: stdout ?? '', stderr: [stderr ?? '', why].filter(Boolean).join('\n') });
    });
  });
}

/** The last few non-empty lines of a command's output, on one line. */
export function lastLines(text: string, n = 4): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n)
    .join(' | ');
}
