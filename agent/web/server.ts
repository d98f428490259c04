// The local status page and its JSON API (docs/web.md) on node:http. Reading needs no
// login; changing (upload, logout) needs a session cookie and its CSRF token; the
// diagnostics bundle needs a session. Static assets are a fixed set read at start, so no
// request path ever reaches the filesystem.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isIP } from 'node:net';
import type { EventEmitter } from 'node:events';
import { UPDATER_VERSION } from '../version.js';
import type { DeviceIdentity } from '../device/identity.js';
import type { ProgressBus, ProgressEvent } from '../log/events.js';
import { DEFAULT_STAGE_LIMITS } from '../package/types.js';
import type { WebConfig } from '../config/web.js';
import { diagnosticsBundle } from './diagnostics.js';
import { ApiError, SECURITY_HEADERS, clientOf, parseCookies, readJsonBody, sameOrigin, sendError, sendJson } from './http.js';
import { readPasswordFile, verifyPassword } from './password.js';
import { LoginRateLimiter, SessionStore, csrfMatches, type Clock, type Session } from './sessions.js';
import { API_VERSION, MAX_HISTORY, type StatusSource } from './status.js';
import { announcedLength, receiveUpload } from './upload.js';

export const SESSION_COOKIE = 'caisson_session';
export const CSRF_HEADER = 'x-csrf-token';
const MAX_EVENT_CLIENTS = 32;
const LIVE_POLL_MS = 250;
const HEARTBEAT_MS = 15_000;

export interface WebServerOptions {
  web: WebConfig;
  status: StatusSource;
  identity: DeviceIdentity;
  deviceClass: string;
  signaturesRequired: boolean;
  inbox: string;
  stateDir: string;
  passwordFile: string;
  /** Extra, non-secret settings for the diagnostics bundle. */
  settings: Record<string, unknown>;
  bus?: ProgressBus;
  /** The agent: 'result' and 'deferred' events refresh the page. */
  agent?: EventEmitter & { deferredCount?: number };
  maxUploadBytes?: number;
  clock?: Clock;
  log?: { info(m: string, meta?: Record<string, unknown>): void; warn(m: string, meta?: Record<string, unknown>): void };
}

const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

export class WebServer {
  private readonly server: Server;
  private readonly sessions: SessionStore;
  private readonly limiter: LoginRateLimiter;
  private readonly assets = new Map<string, { body: Buffer; type: string }>();
  private readonly clients = new Set<ServerResponse>();
  private lastLive = '';
  private lastDeferred = 0;
  private poll: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private uploading = false;
  private readonly onProgress = (e: ProgressEvent) => this.opts.status.onProgress(e);
  private readonly onResult = () => {
    this.opts.status.invalidate();
    this.broadcast('refresh', { reason: 'result' });
  };
  private readonly onDeferred = () => this.broadcast('refresh', { reason: 'deferred' });

  constructor(private readonly opts: WebServerOptions) {
    const clock = opts.clock ?? Date.now;
    this.sessions = new SessionStore({ idleMs: opts.web.sessionIdleMs, maxMs: opts.web.sessionMaxMs }, clock);
    this.limiter = new LoginRateLimiter(undefined, clock);
    const dir = fileURLToPath(new URL('./assets/', import.meta.url));
    for (const [path, a] of Object.entries(ASSETS)) this.assets.set(path, { body: readFileSync(join(dir, a.file)), type: a.type });
    this.server = createServer({ maxHeaderSize: 16 * 1024, headersTimeout: 20_000, requestTimeout: 0, keepAliveTimeout: 5_000 }, (req, res) => {
      void this.handle(req, res);
    });
    this.server.maxHeadersCount = 64;
    // an idle socket (a stalled upload included) is dropped after a minute
    this.server.timeout = 60_000;
  }

  async listen(): Promise<{ address: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.web.port, this.opts.web.address, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.opts.bus?.on('progress', this.onProgress);
    this.opts.agent?.on('result', this.onResult);
    this.opts.agent?.on('deferred', this.onDeferred);
    this.poll = setInterval(() => this.pollLive(), LIVE_POLL_MS);
    this.heartbeat = setInterval(() => {
      for (const c of this.clients) c.write(': keep-alive\n\n');
    }, HEARTBEAT_MS);
    const a = this.server.address();
    const bound = typeof a === 'object' && a ? { address: a.address, port: a.port } : { address: this.opts.web.address, port: this.opts.web.port };
    return bound;
  }

  async close(): Promise<void> {
    clearInterval(this.poll);
    clearInterval(this.heartbeat);
    this.opts.bus?.off('progress', this.onProgress);
    this.opts.agent?.off('result', this.onResult);
    this.opts.agent?.off('deferred', this.onDeferred);
    for (const c of this.clients) c.end();
    this.clients.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    this.opts.status.close();
  }

  // --- routing -----------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (!this.hostAllowed(req)) throw new ApiError(421, 'web.bad_request', 'this page answers only to its own address');
      const url = new URL(req.url ?? '/', 'http://caisson.invalid');
      const route = `${req.method} ${url.pathname}`;
      const asset = req.method === 'GET' || req.method === 'HEAD' ? this.assets.get(url.pathname) : undefined;
      if (asset) return this.sendAsset(res, asset);
      switch (route) {
        case 'GET /api/status':
          return sendJson(res, 200, await this.statusJson(req));
        case 'GET /api/history':
          return sendJson(res, 200, { api_version: API_VERSION, updates: this.opts.status.history(intParam(url, 'limit', 50, MAX_HISTORY)) });
        case 'GET /api/live':
          return sendJson(res, 200, this.liveJson());
        case 'GET /api/events':
          return this.events(req, res);
        case 'GET /api/session':
          return sendJson(res, 200, this.sessionJson(this.session(req)));
        case 'POST /api/login':
          return await this.login(req, res);
        case 'POST /api/logout':
          return this.logout(req, res);
        case 'POST /api/upload':
          return await this.upload(req, res, url);
        case 'GET /api/diagnostics':
          return await this.diagnostics(req, res);
        default:
          if (url.pathname.startsWith('/api/') || this.assets.has(url.pathname)) throw new ApiError(405, 'web.method_not_allowed', `${req.method} is not allowed here`);
          throw new ApiError(404, 'web.not_found', 'no such page');
      }
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(500, 'web.internal', (err as Error).message ?? String(err));
      if (e.status >= 500) this.opts.log?.warn('status page error', { error: e.message });
      // an unread request body (a refused upload) must not keep the socket busy
      if (!req.complete) res.setHeader('Connection', 'close');
      sendError(res, e);
      if (!req.complete) req.resume();
    }
  }

  /** On the loopback address only loopback names are answered (no DNS rebinding). */
  private hostAllowed(req: IncomingMessage): boolean {
    const addr = this.opts.web.address;
    if (addr !== '127.0.0.1' && addr !== '::1') return true;
    const host = (req.headers.host ?? '').toLowerCase();
    const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.split(':')[0]!;
    return name === 'localhost' || (isIP(name) !== 0 && (name.startsWith('127.') || name === '::1'));
  }

  private sendAsset(res: ServerResponse, a: { body: Buffer; type: string }): void {
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': a.type, 'Content-Length': a.body.length, 'Cache-Control': 'no-cache' });
    res.end(a.body);
  }

  // --- reading -----------------------------------------------------------------------

  private async statusJson(req: IncomingMessage): Promise<Record<string, unknown>> {
    const now = new Date();
    return {
      api_version: API_VERSION,
      device: { id: this.opts.identity.id, device_class: this.opts.deviceClass, public_key: this.opts.identity.public_key },
      signatures_required: this.opts.signaturesRequired,
      updater_version: UPDATER_VERSION,
      time: { now: now.toISOString(), time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone, utc_offset_minutes: -now.getTimezoneOffset() },
      services: await this.opts.status.services(),
      live: this.liveJson(),
      inbox: { waiting_for_window: this.opts.agent?.deferredCount ?? 0 },
      login: { enabled: this.loginEnabled(), logged_in: this.session(req, false) !== undefined },
    };
  }

  private liveJson(): Record<string, unknown> {
    return { api_version: API_VERSION, ...this.opts.status.live() };
  }

  private events(req: IncomingMessage, res: ServerResponse): void {
    if (this.clients.size >= MAX_EVENT_CLIENTS) throw new ApiError(503, 'web.busy', 'too many open pages; close one and reload');
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    // bring the pages already open up to date first, then start this one from the same view
    this.pollLive();
    if (!this.lastLive) this.lastLive = JSON.stringify(this.liveJson());
    res.write(`event: live\ndata: ${this.lastLive}\n\n`);
    this.clients.add(res);
    req.socket.setTimeout(0);
    const drop = () => this.clients.delete(res);
    req.on('close', drop);
    res.on('error', drop);
  }

  private pollLive(): void {
    if (this.clients.size === 0) {
      this.lastLive = '';
      return;
    }
    let live: string;
    try {
      live = JSON.stringify(this.liveJson());
    } catch (err) {
      this.opts.log?.warn('cannot read the live status', { error: String(err) });
      return;
    }
    if (live !== this.lastLive) {
      const wasRunning = this.lastLive.includes('"running":true');
      this.lastLive = live;
      this.broadcastRaw('live', live);
      if (wasRunning && live.includes('"running":false')) this.opts.status.invalidate();
    }
    const deferred = this.opts.agent?.deferredCount ?? 0;
    if (deferred !== this.lastDeferred) {
      this.lastDeferred = deferred;
      this.broadcast('refresh', { reason: 'deferred' });
    }
  }

  private broadcast(event: string, value: unknown): void {
    this.broadcastRaw(event, JSON.stringify(value));
  }

  private broadcastRaw(event: string, data: string): void {
    for (const c of this.clients) c.write(`event: ${event}\ndata: ${data}\n\n`);
  }

  // --- login -------------------------------------------------------------------------

  private loginEnabled(): boolean {
    try {
      return readPasswordFile(this.opts.passwordFile) !== undefined;
    } catch {
      return false;
    }
  }

  private session(req: IncomingMessage, refresh = true): Session | undefined {
    const token = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    return refresh ? this.sessions.get(token) : this.sessions.peek(token);
  }

  private sessionJson(s: Session | undefined): Record<string, unknown> {
    if (!s) return { logged_in: false };
    return { logged_in: true, csrf_token: s.csrf, expires_at: new Date(this.sessions.expiresAt(s)).toISOString() };
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!sameOrigin(req)) throw new ApiError(403, 'web.csrf', 'a login must come from this page');
    const client = clientOf(req);
    const wait = this.limiter.retryAfter(client);
    if (wait > 0) {
      const secs = Math.ceil(wait / 1000);
      throw new ApiError(429, 'web.rate_limited', `too many failed logins; try again in ${secs} s`, { 'Retry-After': String(secs) });
    }
    const body = await readJsonBody(req);
    const stored = readPasswordFile(this.opts.passwordFile);
    if (!stored) throw new ApiError(403, 'web.login_disabled', 'no password is set: run `caisson web passwd` on the device');
    const password = typeof body.password === 'string' ? body.password : '';
    if (!(await verifyPassword(password, stored))) {
      this.limiter.failed(client);
      this.opts.log?.warn('status page: failed login', { client });
      throw new ApiError(401, 'web.login_failed', 'wrong password');
    }
    this.limiter.succeeded(client);
    // a login replaces the session the browser had (no session fixation)
    this.sessions.destroy(parseCookies(req.headers.cookie).get(SESSION_COOKIE));
    const s = this.sessions.create();
    this.opts.log?.info('status page: login', { client });
    sendJson(res, 200, this.sessionJson(s), { 'Set-Cookie': `${SESSION_COOKIE}=${s.token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.ceil(this.opts.web.sessionMaxMs / 1000)}` });
  }

  /** A change: a live session and its CSRF token in the header, from this page. */
  private requireChange(req: IncomingMessage): Session {
    const s = this.session(req);
    if (!s) throw new ApiError(401, 'web.login_required', 'log in first (or again: the session has ended)');
    if (!sameOrigin(req) || !csrfMatches(s, headerValue(req, CSRF_HEADER))) {
      throw new ApiError(403, 'web.csrf', 'the request lacks this page\'s CSRF token; reload the page');
    }
    return s;
  }

  private logout(req: IncomingMessage, res: ServerResponse): void {
    const s = this.requireChange(req);
    this.sessions.destroy(s.token);
    sendJson(res, 200, { logged_in: false }, { 'Set-Cookie': `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0` });
  }

  // --- changing ----------------------------------------------------------------------

  private async upload(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    this.requireChange(req);
    const maxBytes = this.opts.maxUploadBytes ?? DEFAULT_STAGE_LIMITS.maxPackageBytes;
    // a request that can never be taken is told so at once, busy or not
    announcedLength(req, maxBytes);
    if (this.uploading) throw new ApiError(409, 'web.busy', 'another upload is running; wait for it to finish');
    this.uploading = true;
    try {
      const name = url.searchParams.get('name');
      const result = await receiveUpload(req, {
        inbox: this.opts.inbox,
        maxBytes,
        name: name && name.length <= 255 ? name : null,
      });
      this.opts.log?.info('status page: package uploaded to the inbox', { file: result.file, bytes: result.size });
      sendJson(res, 202, { file: result.file, size: result.size });
    } finally {
      this.uploading = false;
    }
  }

  private async diagnostics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.session(req)) throw new ApiError(401, 'web.login_required', 'log in to download diagnostics');
    const status = await this.statusJson(req);
    delete status.login;
    const stream = diagnosticsBundle({
      stateDir: this.opts.stateDir,
      inbox: this.opts.inbox,
      documents: {
        'status.json': status,
        'history.json': this.opts.status.history(MAX_HISTORY),
        'settings.json': this.opts.settings,
      },
    });
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': 'application/gzip',
      'Content-Disposition': `attachment; filename="caisson-diagnostics-${this.opts.identity.id}-${stamp}.tar.gz"`,
      'Cache-Control': 'no-store',
    });
    stream.pipe(res);
    res.on('close', () => stream.destroy());
  }
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v.length <= 256 ? v : undefined;
}

function intParam(url: URL, name: string, dflt: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null) return dflt;
  if (!/^\d{1,6}$/.test(raw)) throw new ApiError(400, 'web.bad_request', `${name} must be a whole number`);
  return Math.min(Math.max(1, Number(raw)), max);
}
