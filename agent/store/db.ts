// The state database: history, the update journal, what is installed and the time floor, in one SQLite
// file under the state dir. WAL + synchronous=FULL: every committed transaction is on
// disk before the call returns, so a state saved before a side effect survives kill -9
// and power loss (DESIGN.md explains why SQLite replaced nedb). The state dir is 0750 and
// the database (with its -wal and -shm files) 0640 whatever the umask: history names
// services, versions and sticks, and only root writes any of it.
import Database from 'better-sqlite3';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { STATE_DIR_MODE, STATE_FILE_MODE, tighten } from '../perms.js';

export type Db = Database.Database;

/** Schema migrations, applied in order; the index + 1 is the schema version. */
export const MIGRATIONS: string[] = [
  `CREATE TABLE updates (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL,                 -- 'update' | 'validation'
     source TEXT NOT NULL,               -- 'cli' | 'usb' | 'inbox'
     package_file TEXT NOT NULL,
     package_sha256 TEXT,
     package_version TEXT,
     service TEXT,
     from_image TEXT,
     to_image TEXT,
     from_version TEXT,
     to_version TEXT,
     state TEXT NOT NULL,                -- journal state, see pipeline/states.ts
     outcome TEXT,                       -- set when closed
     error_code TEXT,
     error_message TEXT,
     error_next TEXT,
     data TEXT NOT NULL DEFAULT '{}',    -- versioned journal data (JSON): staging dir, switch plan, …
     medium_uuid TEXT,
     started_at TEXT NOT NULL,
     finished_at TEXT,
     closed INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX updates_open ON updates (closed) WHERE closed = 0;
   CREATE INDEX updates_sha ON updates (package_sha256);
   CREATE TABLE steps (
     update_id TEXT NOT NULL REFERENCES updates (id) ON DELETE CASCADE,
     seq INTEGER NOT NULL,
     state TEXT NOT NULL,
     at TEXT NOT NULL,
     detail TEXT,
     PRIMARY KEY (update_id, seq)
   );
   CREATE TABLE installed (
     service TEXT PRIMARY KEY,
     package_version TEXT NOT NULL,
     package_sha256 TEXT NOT NULL,
     image_ref TEXT NOT NULL,
     update_id TEXT NOT NULL,
     installed_at TEXT NOT NULL,
     highest_version TEXT NOT NULL        -- downgrade policy: never below this without --allow-downgrade
   );
   CREATE TABLE installed_packages (       -- every package sha ever committed, per service and version
     package_sha256 TEXT PRIMARY KEY,
     service TEXT NOT NULL,
     package_version TEXT NOT NULL,
     update_id TEXT NOT NULL
   );`,
  // A package is known by its identity (package/identity.ts: the manifest bytes and the
  // image digest), no longer by a SHA-256 of the whole file, so it is hashed once per
  // update. Rows written before keep their file digests under the new name; loading one
  // of those packages again is then judged by the version policy, not as already installed.
  `ALTER TABLE updates RENAME COLUMN package_sha256 TO package_id;
   DROP INDEX updates_sha;
   CREATE INDEX updates_package ON updates (package_id);
   ALTER TABLE installed RENAME COLUMN package_sha256 TO package_id;
   ALTER TABLE installed_packages RENAME COLUMN package_sha256 TO package_id;`,
  // Outcomes still to be written to the stick they came from (report/stick.ts). Created by
  // the agent itself before it was a migration, hence IF NOT EXISTS.
  `CREATE TABLE IF NOT EXISTS agent_stick_reports (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     medium_uuid TEXT NOT NULL,
     update_id TEXT NOT NULL,
     result TEXT NOT NULL,            -- UpdateResult as JSON
     created_at TEXT NOT NULL
   );
   CREATE INDEX IF NOT EXISTS agent_stick_reports_uuid ON agent_stick_reports (medium_uuid, id);`,
  // Stack packages: one update record for several services. Each service's part (what it
  // ran, what the stack brings, how far it got) is a row of update_members, so history
  // and "the last update of a service" find it; a service installed by a stack says which.
  `ALTER TABLE updates ADD COLUMN stack TEXT;
   CREATE TABLE update_members (
     update_id TEXT NOT NULL REFERENCES updates (id) ON DELETE CASCADE,
     seq INTEGER NOT NULL,              -- switch order, from 0
     service TEXT NOT NULL,
     state TEXT NOT NULL,               -- pending | planned | switched | healthy | restored | committed
     from_version TEXT,
     to_version TEXT,
     from_image TEXT,
     to_image TEXT,
     PRIMARY KEY (update_id, seq)
   );
   CREATE INDEX update_members_service ON update_members (service);
   ALTER TABLE installed ADD COLUMN stack TEXT;
   ALTER TABLE installed ADD COLUMN stack_version TEXT;`,
  // Freshness (package/freshness.ts, store/freshness.ts): per service, the newest issued_at
  // of a signed package committed; the device's time floor is the newest of these.
  `CREATE TABLE newest_issue (
     service TEXT PRIMARY KEY,
     issued_at TEXT NOT NULL,          -- as the manifest spells it (RFC 3339)
     issued_ms INTEGER NOT NULL,       -- the same instant in ms since the epoch, for ordering
     update_id TEXT NOT NULL
   );`,
];

export function openDatabase(stateDir: string): Db {
  mkdirSync(stateDir, { recursive: true, mode: STATE_DIR_MODE });
  tighten(stateDir, STATE_DIR_MODE);
  const file = join(stateDir, 'caisson.db');
  // SQLite creates the -wal and -shm files with the database file's mode: create that first
  try {
    closeSync(openSync(file, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, STATE_FILE_MODE));
  } catch {
    // not writable for this user: SQLite opens it read-only or says why
  }
  tighten(file, STATE_FILE_MODE);
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  for (const side of ['-wal', '-shm']) tighten(file + side, STATE_FILE_MODE);
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

/**
 * Open an existing state database for reading only (the read-only commands): nothing is
 * created or migrated. Undefined when the state folder has no database yet.
 */
export function openDatabaseReadOnly(stateDir: string): Db | undefined {
  const path = join(stateDir, 'caisson.db');
  if (!existsSync(path)) return undefined;
  if (existsSync(`${path}-wal`) && existsSync(`${path}-shm`)) {
    // a writer has it open (the agent): read alongside it through the WAL, which exists
    const db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    return db;
  }
  // Nobody has it open, so the main file holds everything. A read-only SQLite connection
  // would still create the -wal and -shm companions; read a copy in memory instead, marked
  // as a rollback-journal database (header bytes 18-19) since memory cannot hold a WAL.
  const bytes = readFileSync(path);
  if (bytes.length >= 20) bytes[18] = bytes[19] = 1;
  return new Database(bytes, { readonly: true });
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}
