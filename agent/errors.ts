// Every failure Caisson reports carries a stable dotted code, a one-line message for
// people and the next step to take. The same codes appear in the CLI, history, logs
// and the stick report, so they are part of the public interface: add, never rename.

export interface ErrorInfo {
  /** What a person should do next; shown after the message. */
  next: string;
}

export const ERROR_CODES = {
  // --- the package file itself -------------------------------------------------
  'package.not_found': { next: 'Check the path and try again.' },
  'package.not_regular_file': { next: 'Give the path of a regular .edgepkg file, not a link, folder or pipe.' },
  'package.too_large': { next: 'Rebuild the package; it exceeds the size this device accepts.' },
  'package.read_failed': { next: 'Check the medium (stick) and copy the package again.' },
  'package.not_tar': { next: 'Rebuild the package with `caisson package build`.' },
  'package.truncated': { next: 'The package is incomplete; copy it again from the original.' },
  'package.trailing_garbage': { next: 'The package has data after its end; rebuild it with `caisson package build`.' },
  'package.path_escape': { next: 'Reject this package: it tries to write outside its folder. Ask the vendor for a proper one.' },
  'package.unexpected_entry': { next: 'Rebuild the package: only manifest.toml, image.tar and manifest.toml.sig are allowed.' },
  'package.link_entry': { next: 'Rebuild the package: links are not allowed in packages.' },
  'package.special_entry': { next: 'Rebuild the package: device, FIFO and folder entries are not allowed.' },
  'package.duplicate_entry': { next: 'Rebuild the package: each file may appear only once.' },
  'package.header_mismatch': { next: 'Rebuild the package: its extended headers disagree with its plain headers.' },
  'package.entry_too_large': { next: 'Rebuild the package: an entry is larger than allowed or declared.' },
  'package.missing_manifest': { next: 'Rebuild the package: manifest.toml is missing.' },
  'package.missing_image': { next: 'Rebuild the package: image.tar is missing.' },
  // --- the manifest ---------------------------------------------------------------
  'manifest.too_large': { next: 'Rebuild the package: manifest.toml may be at most 64 KiB.' },
  'manifest.not_utf8': { next: 'Rebuild the package: manifest.toml must be UTF-8 text.' },
  'manifest.invalid_toml': { next: 'Fix the TOML syntax of manifest.toml and rebuild the package.' },
  'manifest.invalid': { next: 'Fix manifest.toml as the message says and rebuild the package (see docs/package-format.md).' },
  'manifest.unsupported_format': { next: 'Update Caisson on this device, or build the package in format_version 1.' },
  'manifest.unsupported_type': { next: 'This device accepts package_type "service" and "stack" only.' },
  'manifest.unknown_service': { next: 'Use a package built for a service in this device\'s catalog (`caisson service list`).' },
  'manifest.revision_mismatch': { next: 'Use a package built for this device\'s service revision (`caisson service show NAME`).' },
  'manifest.platform_mismatch': { next: 'Use a package built for this device\'s platform.' },
  'manifest.duplicate_service': { next: 'Rebuild the stack package so that it names each service once.' },
  'manifest.bad_order': { next: 'Rebuild the stack package with its services in an order that follows depends_on in services.toml (a service after those it depends on).' },
  'manifest.updater_too_old': { next: 'Update Caisson on this device first; the package needs a newer updater.' },
  'manifest.not_for_this_device': { next: 'Use a package built for this device: `caisson device show` prints its ID and class for the vendor.' },
  // --- integrity, signature, policy ------------------------------------------------
  'integrity.size_mismatch': { next: 'The image is not the one the manifest describes; copy the package again or ask the vendor.' },
  'integrity.sha256_mismatch': { next: 'The image is corrupt or was altered; copy the package again or ask the vendor.' },
  'image.invalid': { next: 'Rebuild the package with `caisson package build`: docker save output of exactly one image (a stack: of exactly its services\' images).' },
  'image.too_large': { next: 'The compressed image inflates beyond what this device accepts; ask the vendor for a signed package or an uncompressed image.tar.' },
  'image.platform_mismatch': { next: 'Rebuild the package from the image for the device platform (docker save --platform).' },
  'image.reference_mismatch': { next: 'Rebuild the package so image.tar holds exactly the image the manifest names.' },
  'image.not_in_archive': { next: 'Rebuild the stack package so that its image archive holds each service\'s image, with the config digest the manifest pins.' },
  'image.id_mismatch': { next: 'The imported image is not the one in the package; ask the vendor for a proper package.' },
  'image.tag_moved': { next: 'The package tried to retag other images; it was rejected and the tags restored.' },
  'signature.missing': { next: 'This device only takes signed packages: sign it with `caisson package build --sign KEY`.' },
  'signature.invalid': { next: 'The signature does not match a trusted key; get a package signed by a trusted vendor key.' },
  'signature.unpinned_image': { next: 'Signed packages must pin image.sha256 and image.size; rebuild with `caisson package build`.' },
  'crypto.no_matching_key': { next: 'The package was encrypted for other devices: ask the vendor for one encrypted to this device\'s key (`caisson device show`).' },
  'crypto.header_invalid': { next: 'The encrypted image\'s header is damaged or was altered; copy the package again or ask the vendor.' },
  'crypto.header_too_large': { next: 'Reject this package: its encryption header is larger than any Caisson writes. Ask the vendor for a proper one.' },
  'crypto.too_many_recipients': { next: 'Ask the vendor to encrypt the package for fewer recipients (at most 128; a shared fleet key counts as one).' },
  'crypto.payload_truncated': { next: 'The encrypted image is incomplete; copy the package again from the original.' },
  'crypto.chunk_out_of_order': { next: 'The encrypted image\'s pieces were reordered; copy the package again from the original.' },
  'crypto.chunk_tampered': { next: 'The encrypted image is corrupt or was altered; copy the package again or ask the vendor.' },
  'crypto.unsupported_scheme': { next: 'Update Caisson on this device, or ask the vendor for a package encrypted with "age-v1-x25519".' },
  'crypto.declaration_mismatch': { next: 'Rebuild the package with `caisson package build`: its manifest and its image entry disagree about encryption.' },
  'policy.encryption_required': { next: 'This device only takes encrypted packages: ask the vendor to build it with `--encrypt-to` this device\'s key.' },
  'signature.no_issued_at': { next: 'Signed packages must carry issued_at; rebuild with `caisson package build`.' },
  'policy.downgrade': { next: 'Use a newer package, or pass --allow-downgrade on the local CLI if this is intended.' },
  'policy.already_installed': { next: 'Nothing to do: this package is already installed.' },
  'policy.expired': { next: 'The package is past its expires_at: ask the vendor for a freshly issued one.' },
  'policy.older_issue': { next: 'Use a package issued later, or pass --allow-downgrade on the local CLI if going back is intended.' },
  'disk.insufficient': { next: 'Free disk space on the device (`caisson package cleanup`, old images) and try again.' },
  'fs.error': { next: 'Check the file or folder the message names (it exists, permissions, the medium), then try again.' },
  'stick.too_many_packages': { next: 'Put fewer packages on one stick (agent.toml intake.max_packages_per_stick); bring the rest on another.' },
  // --- docker and the service -------------------------------------------------------
  'docker.unreachable': { next: 'Check that the Docker engine runs (`systemctl status docker`), then try again.' },
  'docker.load_failed': { next: 'The engine refused the image; rebuild the package with `docker save`.' },
  'docker.error': { next: 'Check the Docker engine log; the service was left on its previous version if it had switched.' },
  'service.not_found': { next: 'Create the service\'s container first (or fix container_name in services.toml).' },
  'service.unsupported': { next: 'Recreate the service\'s container as the message says (see docs/runtime.md), then try again.' },
  'service.start_failed': { next: 'The new version could not start; the previous version was restored. Check the package with the vendor.' },
  'compose.failed': { next: 'Check the compose file and `docker compose`/`docker-compose` output in the log.' },
  'compose.unavailable': { next: 'Install Docker Compose v2 (`docker compose`, or docker-compose 2.x) on the device; v1 works only with Docker Engine 24 and older.' },
  'health.timeout': { next: 'The new version did not become healthy in time and was rolled back; report this to the vendor.' },
  'health.unstable': { next: 'The new version restarted or failed after first passing and was rolled back; report this to the vendor.' },
  'rollback.failed': { next: 'The service needs a person: check `caisson history show ID` and the Docker engine now.' },
  'update.interrupted': { next: 'The update was interrupted and reversed on restart; try again.' },
  'update.cancelled': { next: 'Nothing was changed; run the command again to apply the package.' },
  'update.busy': { next: 'Another Caisson process holds the state folder; wait for it to finish.' },
  // --- configuration and usage ------------------------------------------------------------
  'config.invalid': { next: 'Fix the configuration file as the message says.' },
  'usage.invalid': { next: 'See `caisson --help`.' },
  'device.identity_invalid': { next: 'Move device.key and device.json out of the config folder; the next start makes a new identity (tell the vendor the new ID).' },
  'device.key_invalid': { next: 'Give the file `caisson key fleet` or `age-keygen` wrote (one AGE-SECRET-KEY-1… line); for a damaged installed key, delete the file the message names and add the key again.' },
  'device.key_not_found': { next: '`caisson device show` lists the keys this device holds besides its own; name one by its public key or ID.' },
  'internal.error': { next: 'Report this with the log; the service was left on its previous version.' },
} as const satisfies Record<string, ErrorInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class CaissonError extends Error {
  readonly code: ErrorCode;
  readonly next: string;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; next?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CaissonError';
    this.code = code;
    this.next = options?.next ?? ERROR_CODES[code].next;
  }

  toJSON(): { code: ErrorCode; message: string; next: string } {
    return { code: this.code, message: this.message, next: this.next };
  }
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}

/**
 * Map anything thrown to a CaissonError, keeping codes that are already ours. Only a failure
 * to reach the engine's socket is docker.unreachable; a file-system error (it names a path)
 * is disk.insufficient when the disk is full, else fs.error unless the caller's fallback
 * already says what was being read or written.
 */
export function toCaissonError(err: unknown, fallback: ErrorCode = 'internal.error'): CaissonError {
  if (err instanceof CaissonError) return err;
  if (isDockerUnreachable(err)) {
    return new CaissonError('docker.unreachable', `the Docker engine does not answer (${describe(err)})`, { cause: err });
  }
  if (isFsError(err)) {
    if (err.code === 'ENOSPC' || err.code === 'EDQUOT') return new CaissonError('disk.insufficient', describe(err), { cause: err });
    const code = fallback === 'internal.error' || fallback.startsWith('docker.') ? 'fs.error' : fallback;
    return new CaissonError(code, describe(err), { cause: err });
  }
  return new CaissonError(fallback, describe(err), { cause: err });
}

/** Errors of a connection that never reached the engine, or that it dropped. */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'ETIMEDOUT']);
const CONNECTION_LOST = new Set(['ECONNRESET', 'EPIPE']);

/**
 * True for errors of the socket to the engine: a failed `connect` (no socket, refused, no
 * permission), or a connection reset or broken under a request. A file-system error (it
 * carries the path it was about) never is, whatever its errno.
 */
export function isDockerUnreachable(err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false;
  const { code, syscall, path } = err as { code?: unknown; syscall?: unknown; path?: unknown };
  if (typeof code !== 'string' || typeof path === 'string') return false;
  if (syscall === 'connect') return CONNECT_FAILURES.has(code);
  return CONNECTION_LOST.has(code);
}

/** A Node file-system error: an errno code, the call and the path it was about. */
export function isFsError(err: unknown): err is NodeJS.ErrnoException & { code: string; path: string } {
  if (err === null || typeof err !== 'object') return false;
  const { code, path } = err as { code?: unknown; path?: unknown };
  return typeof code === 'string' && typeof path === 'string';
}

export function describe(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err);
}
