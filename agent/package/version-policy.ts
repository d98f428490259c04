// The version policy of one service, pure: a service never goes below the highest
// package_version it has had, and one version means one package, unless the local operator
// says otherwise. pipeline/policy.ts applies it with the journal; a stack to each member.
import { CaissonError } from '../errors.js';
import { compareSemver } from './semver.js';

/** What the policy needs to know of a service's installed version (a row of `installed`). */
export interface InstalledVersion {
  package_version: string;
  highest_version: string;
  package_id: string;
}

/** Where installed versions are looked up: the journal, or a map in a test. */
export interface InstalledLookup {
  installed(service: string): InstalledVersion | undefined;
}

export function checkVersionPolicy(installed: InstalledVersion | undefined, service: string, version: string, packageId: string, allowDowngrade: boolean): void {
  if (allowDowngrade) return;
  if (!installed) return;
  const order = compareSemver(version, installed.highest_version);
  if (order < 0) {
    throw new CaissonError('policy.downgrade', `${service} ${version} is older than ${installed.highest_version}, which this device has had`);
  }
  if (order === 0 && packageId !== installed.package_id) {
    throw new CaissonError('policy.downgrade', `${service} ${version} is already installed from a different package (other content); a new version needs a new number`);
  }
  if (order === 0 && installed.package_version !== version) {
    // same precedence, different build metadata: treat as a different package of the same version
    throw new CaissonError('policy.downgrade', `${service} ${version} has the same precedence as ${installed.highest_version}`);
  }
}
