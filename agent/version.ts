// The updater's own version, compared with a package's min_updater_version.
import { readFileSync } from 'node:fs';

function readOwnVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'caisson' && pkg.version) return pkg.version;
    } catch {
      // try the next location: the layout differs between tsx (agent/) and tsc output (dist/agent/)
    }
  }
  return '0.0.0';
}

export const UPDATER_VERSION = readOwnVersion();
