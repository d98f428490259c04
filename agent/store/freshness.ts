// The time floor and the replay rule's memory (package/freshness.ts): per service, the newest
// issued_at of a signed package the device committed. Written only inside the commit's
// transaction (pipeline.ts), and only ever forward, so the floor never moves back.
import type { Db } from './db.js';

export interface IssueRecord {
  service: string;
  /** As the manifest spells it. */
  issuedAt: string;
  /** The same instant in ms since the epoch (the caller parses it; the store only orders). */
  issuedMs: number;
  updateId: string;
}

export class IssueRecords {
  constructor(private readonly db: Db) {}

  /** The newest issued_at committed for this service, if any. */
  newestFor(service: string): string | undefined {
    const row = this.db.prepare('SELECT issued_at FROM newest_issue WHERE service = ?').get(service) as { issued_at: string } | undefined;
    return row?.issued_at;
  }

  /** The device's time floor: the newest issued_at committed for any service, if any. */
  floor(): string | undefined {
    const row = this.db.prepare('SELECT issued_at FROM newest_issue ORDER BY issued_ms DESC LIMIT 1').get() as { issued_at: string } | undefined;
    return row?.issued_at;
  }

  /** Remember a committed package's issued_at, unless the service already has a newer one. */
  record(r: IssueRecord): void {
    this.db
      .prepare(
        `INSERT INTO newest_issue (service, issued_at, issued_ms, update_id) VALUES (@service, @issuedAt, @issuedMs, @updateId)
         ON CONFLICT (service) DO UPDATE SET issued_at = excluded.issued_at, issued_ms = excluded.issued_ms, update_id = excluded.update_id
         WHERE excluded.issued_ms > newest_issue.issued_ms`,
      )
      .run(r);
  }
}
