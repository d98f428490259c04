// Logins for the status page, kept in the agent's memory only (a restart logs everyone
// out): an opaque session token in an HttpOnly cookie, a separate CSRF token the page
// sends back in a header on every change, an idle timeout and an absolute one, and a
// limit on failed login attempts. The clock is passed in so tests can move time.
import { randomBytes, timingSafeEqual } from 'node:crypto';

export type Clock = () => number;

export interface Session {
  token: string;
  csrf: string;
  createdAt: number;
  lastUsed: number;
}

export interface SessionLimits {
  idleMs: number;
  maxMs: number;
  /** How many sessions may exist at once; the oldest goes first. */
  maxSessions?: number;
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly limits: SessionLimits,
    private readonly clock: Clock = Date.now,
  ) {}

  create(): Session {
    this.sweep();
    const max = this.limits.maxSessions ?? 32;
    while (this.sessions.size >= max) this.sessions.delete(this.sessions.keys().next().value!);
    const now = this.clock();
    const s: Session = { token: randomToken(), csrf: randomToken(), createdAt: now, lastUsed: now };
    this.sessions.set(s.token, s);
    return s;
  }

  /** The live session for a token, refreshed; undefined when unknown or expired. */
  get(token: string | undefined): Session | undefined {
    if (!token) return undefined;
    const s = this.sessions.get(token);
    if (!s) return undefined;
    const now = this.clock();
    if (this.expired(s, now)) {
      this.sessions.delete(token);
      return undefined;
    }
    s.lastUsed = now;
    return s;
  }

  /** The live session for a token, without counting this as a use. */
  peek(token: string | undefined): Session | undefined {
    if (!token) return undefined;
    const s = this.sessions.get(token);
    return s && !this.expired(s, this.clock()) ? s : undefined;
  }

  /** When this session ends if it is not used again. */
  expiresAt(s: Session): number {
    return Math.min(s.lastUsed + this.limits.idleMs, s.createdAt + this.limits.maxMs);
  }

  destroy(token: string | undefined): void {
    if (token) this.sessions.delete(token);
  }

  get size(): number {
    this.sweep();
    return this.sessions.size;
  }

  private expired(s: Session, now: number): boolean {
    return now >= this.expiresAt(s);
  }

  private sweep(): void {
    const now = this.clock();
    for (const [t, s] of this.sessions) if (this.expired(s, now)) this.sessions.delete(t);
  }
}

/** Compare a CSRF token from a request with the session's, in constant time. */
export function csrfMatches(session: Session, given: string | undefined): boolean {
  if (!given) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface RateLimits {
  /** Failed attempts allowed per client within the window... */
  perClient: number;
  /** ...and from all clients together (a guessing spread over many addresses). */
  overall: number;
  windowMs: number;
}

export const DEFAULT_LOGIN_LIMITS: RateLimits = { perClient: 5, overall: 20, windowMs: 5 * 60_000 };

/** Counts failed logins in a sliding window; a success does not clear the overall count. */
export class LoginRateLimiter {
  private readonly failures = new Map<string, number[]>();
  private all: number[] = [];

  constructor(
    private readonly limits: RateLimits = DEFAULT_LOGIN_LIMITS,
    private readonly clock: Clock = Date.now,
  ) {}

  /** Milliseconds until this client may try again; 0 = may try now. */
  retryAfter(client: string): number {
    const now = this.clock();
    this.prune(now);
    const mine = this.failures.get(client) ?? [];
    let wait = 0;
    if (mine.length >= this.limits.perClient) wait = Math.max(wait, mine[mine.length - this.limits.perClient]! + this.limits.windowMs - now);
    if (this.all.length >= this.limits.overall) wait = Math.max(wait, this.all[this.all.length - this.limits.overall]! + this.limits.windowMs - now);
    return Math.max(0, wait);
  }

  failed(client: string): void {
    const now = this.clock();
    const mine = this.failures.get(client) ?? [];
    mine.push(now);
    this.failures.set(client, mine.slice(-this.limits.perClient));
    this.all.push(now);
    this.all = this.all.slice(-this.limits.overall);
    // bound the map itself: at most this many distinct clients are remembered
    if (this.failures.size > 1024) this.failures.delete(this.failures.keys().next().value!);
  }

  succeeded(client: string): void {
    this.failures.delete(client);
  }

  private prune(now: number): void {
    for (const [c, list] of this.failures) {
      const kept = list.filter((t) => t + this.limits.windowMs > now);
      if (kept.length) this.failures.set(c, kept);
      else this.failures.delete(c);
    }
    this.all = this.all.filter((t) => t + this.limits.windowMs > now);
  }
}

function randomToken(): string {
  return randomBytes(32).toString('base64url');
}
