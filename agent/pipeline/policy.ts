// Downgrade policy: a service never goes below the highest package_version it has had,
// and one version means one package, unless the local operator says otherwise
// (the rule itself: package/version-policy.ts).
import { checkVersionPolicy } from '../package/version-policy.js';
import type { Journal } from '../store/journal.js';

export function checkPolicy(journal: Journal, service: string, version: string, packageId: string, allowDowngrade: boolean): void {
  checkVersionPolicy(journal.installed(service), service, version, packageId, allowDowngrade);
}
