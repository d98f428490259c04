// The status page's server without an engine: a fake driver for container state, a real
// state database, a real HTTP socket. Hostile requests are refused with the documented
// codes; uploads land in the inbox whole or not at all.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContainerInfo } from '../../../agent/health/probes.js';
import { parseCatalog } from '../../../agent/config/services.js';
import { ProgressBus, emittingProgress } from '../../../agent/log/events.js';
import { openDatabase } from '../../../agent/store/db.js';
import { Journal } from '../../../agent/store/journal.js';
import { acquireStateLock } from '../../../agent/store/lock.js';
import type { ServiceDriver } from '../../../agent/runtime/driver.js';
import { hashPassword, writePasswordFile } from '../../../agent/web/password.js';
import { WebServer } from '../../../agent/web/server.js';
import { StatusSource, stepText, updateView } from '../../../agent/web/status.js';
import { parseCookies } from '../../../agent/web/http.js';
import { inboxNameFor } from '../../../agent/web/upload.js';

const CATALOG = parseCatalog(`catalog_version = 1
[[services]]
name = "web"
service_revision = "web-v1"
platform = "linux/amd64"
runtime_mode = "docker"
[services.docker]
container_name = "web"
image_reference = "example/web:1.0.0"
[services.health_check]
kind = "http"
url = "http://127.0.0.1:1/health"
`);

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

describe('web: status page server', function () {
  this.timeout(20_000);
  let dir: string;
  let journal: Journal;
  let inbox: string;
  let port: number;
  let server: WebServer;
  let now: number;
  const bus = new ProgressBus();

  function call(method: string, path: string, opts: { headers?: Record<string, string | number>; body?: string | Buffer } = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path, headers: { Host: `127.0.0.1:${port}`, ...opts.headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(body);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode!, headers: res.headers, body, json });
        });
      });
      req.on('error', reject);
      req.end(opts.body);
    });
  }

  async function login(): Promise<{ cookie: string; csrf: string }> {
    const r = await call('POST', '/api/login', { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ password: 'correct horse' }) });
    assert.equal(r.status, 200, r.body);
    const cookie = String(r.headers['set-cookie']).split(';')[0]!;
    return { cookie, csrf: r.json.csrf_token };
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'caisson-web-'));
    inbox = join(dir, 'inbox');
    mkdirSync(inbox);
    const state = join(dir, 'state');
    const db = openDatabase(state);
    const j = new Journal(db);
    const ok = j.begin({ kind: 'update', source: 'inbox', packageFile: '/inbox/web-1.1.0.edgepkg' });
    j.transition(ok, 'staged', { patch: { service: 'web', to_version: '1.1.0', package_version: '1.1.0' } });
    j.transition(ok, 'validated');
    j.close(ok, 'committed', undefined, {
      onClose: () => j.recordInstalled({ service: 'web', version: '1.1.0', packageId: 'p1', imageRef: 'example/web:1.1.0', updateId: ok, highest: '1.1.0' }),
    });
    const bad = j.begin({ kind: 'update', source: 'usb', packageFile: '/media/x/web-1.2.0.edgepkg' });
    j.transition(bad, 'staged', { patch: { service: 'web', to_version: '1.2.0', from_version: '1.1.0', package_version: '1.2.0' } });
    j.transition(bad, 'switching');
    j.transition(bad, 'health_checking');
    j.transition(bad, 'rolling_back');
    j.close(bad, 'rolled_back', { code: 'health.timeout', message: 'web did not answer /health within 8 s', next: 'report it' });
    journal = j;
    writePasswordFile(join(dir, 'web-password'), hashPassword('correct horse', { N: 1024, r: 8, p: 1 }));
    const driver = {
      inspect: async () => ({ running: true, status: 'running', imageRef: 'example/web:1.1.0', containerId: 'abc', restartCount: 0 }),
    } as unknown as ServiceDriver;
    const container = async () => ({ State: { Health: { Status: 'healthy' } }, Config: { Env: ['SECRET=hunter2'] } }) as unknown as ContainerInfo;
    now = Date.now();
    server = new WebServer({
      web: { enabled: true, address: '127.0.0.1', port: 0, sessionIdleMs: 60_000, sessionMaxMs: 600_000 },
      status: new StatusSource({ journal: j, catalog: CATALOG, container, driverFor: () => driver }),
      identity: { id: 'abcd-efgh-ijkl-mnop', public_key: Buffer.alloc(32, 7).toString('base64'), created_at: '2026-01-01T00:00:00Z' },
      deviceClass: 'gateway',
      signaturesRequired: true,
      inbox,
      stateDir: state,
      passwordFile: join(dir, 'web-password'),
      settings: { inbox },
      bus,
      maxUploadBytes: 1024 * 1024,
      clock: () => now,
    });
    port = (await server.listen()).port;
  });

  after(async () => {
    await server?.close();
    journal?.db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('status: device ID and class, signatures required, services with version, container state and health, no environment', async () => {
    const r = await call('GET', '/api/status');
    assert.equal(r.status, 200);
    assert.equal(r.json.device.id, 'abcd-efgh-ijkl-mnop');
    assert.equal(r.json.device.device_class, 'gateway');
    assert.equal(r.json.signatures_required, true);
    assert.equal(typeof r.json.time.time_zone, 'string');
    const web = r.json.services[0];
    assert.equal(web.name, 'web');
    assert.equal(web.version, '1.1.0');
    assert.deepEqual(web.container, { status: 'running', running: true, health: 'healthy', image: 'example/web:1.1.0', restart_count: 0 });
    assert.equal(web.last_result.outcome, 'rolled_back');
    assert.equal(web.last_result.error_code, 'health.timeout');
    assert.ok(!r.body.includes('hunter2') && !r.body.includes('SECRET'), 'no container environment');
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.match(String(r.headers['content-security-policy']), /default-src 'none'/);
  });

  it('history: every update with its steps in plain words, the error code, message and next step', async () => {
    const r = await call('GET', '/api/history?limit=10');
    assert.equal(r.status, 200);
    const [bad, ok] = r.json.updates;
    assert.equal(bad.outcome, 'rolled_back');
    assert.deepEqual(bad.error, { code: 'health.timeout', message: 'web did not answer /health within 8 s', next: 'report it' });
    assert.match(bad.summary, /rolled back.*Reason: web did not answer/);
    assert.deepEqual(
      bad.steps.map((s: { state: string }) => s.state),
      ['received', 'staged', 'switching', 'health_checking', 'rolling_back', 'closed:rolled_back'],
    );
    assert.equal(bad.steps[4].text, 'putting the previous version back');
    assert.equal(ok.outcome, 'committed');
    assert.equal((await call('GET', '/api/history?limit=abc')).json.error.code, 'web.bad_request');
  });

  it('live: the latest update, with progress from the pipeline while one runs', async () => {
    const r = await call('GET', '/api/live');
    assert.equal(r.json.running, false);
    assert.equal(r.json.update.outcome, 'rolled_back');
    assert.equal(r.json.progress, null);
    // an update starts (as the agent or the CLI would write it): the page sees it and its progress
    const db = openDatabase(join(dir, 'state'));
    try {
      const j = new Journal(db);
      const id = j.begin({ kind: 'update', source: 'inbox', packageFile: '/inbox/web-1.3.0.edgepkg' });
      j.transition(id, 'loading_image', { patch: { service: 'web', to_version: '1.3.0' } });
      emittingProgress(bus).bytes('importing', 10, 20);
      let live = (await call('GET', '/api/live')).json;
      assert.equal(live.running, true);
      assert.equal(live.update.update_id, id);
      assert.equal(live.update.state_text, 'importing the image into the engine (tags snapshotted before)');
      assert.deepEqual(live.progress, { bytes: { phase: 'importing', done: 10, total: 20 } });
      j.transition(id, 'health_checking');
      emittingProgress(bus).countdown('health', 7.2, '· healthy for 1.0 of 3 s');
      live = (await call('GET', '/api/live')).json;
      assert.deepEqual(live.progress, { health: { seconds_left: 8, note: 'healthy for 1.0 of 3 s' } });
      emittingProgress(bus).done();
      assert.deepEqual((await call('GET', '/api/live')).json.progress, {});
      j.close(id, 'rejected', { code: 'disk.insufficient', message: 'full', next: 'free space' });
      live = (await call('GET', '/api/live')).json;
      assert.equal(live.running, false);
      assert.equal(live.progress, null);
      db.prepare('DELETE FROM updates WHERE id = ?').run(id);
    } finally {
      db.close();
    }
  });

  it('reads without the state-dir lock: the CLI and the pipeline can take it while the page serves', async () => {
    const lock = acquireStateLock(join(dir, 'state'), 'test');
    try {
      assert.equal((await call('GET', '/api/history')).status, 200);
      assert.equal((await call('GET', '/api/status')).status, 200);
    } finally {
      lock.release();
    }
  });

  it('events: a server-sent event stream starting with the live view', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/api/events', headers: { Host: `127.0.0.1:${port}` } }, (res) => {
        assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
        let got = '';
        res.on('data', (c: Buffer) => {
          got += c.toString();
          if (got.includes('event: live')) {
            req.destroy();
            resolve(got);
          }
        });
      });
      req.on('error', reject);
      req.end();
    });
    const data = JSON.parse(text.split('event: live\ndata: ')[1]!.split('\n')[0]!);
    assert.equal(data.update.outcome, 'rolled_back');
  });

  it('static files are a fixed set: no path reaches the filesystem', async () => {
    assert.equal((await call('GET', '/')).status, 200);
    assert.match((await call('GET', '/app.js')).body, /textContent/);
    for (const p of ['/../../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/assets/../server.ts', '/index.html', '//etc/passwd', '/app.js%00.html']) {
      const r = await call('GET', p);
      assert.equal(r.status, 404, p);
      assert.ok(!r.body.includes('root:'), p);
    }
    assert.equal((await call('DELETE', '/app.js')).status, 405);
  });

  it('answers only to loopback names on the loopback address (no DNS rebinding)', async () => {
    const r = await call('GET', '/api/status', { headers: { Host: 'attacker.example' } });
    assert.equal(r.status, 421);
    assert.equal((await call('GET', '/api/status', { headers: { Host: `localhost:${port}` } })).status, 200);
  });

  it('a wrong password is refused; repeated failures are rate-limited with Retry-After', async () => {
    const wrong = () => call('POST', '/api/login', { headers: { 'Content-Type': 'application/json' }, body: '{"password":"nope nope"}' });
    const r = await wrong();
    assert.equal(r.status, 401);
    assert.equal(r.json.error.code, 'web.login_failed');
    assert.equal(r.headers['set-cookie'], undefined);
    for (let i = 0; i < 4; i++) assert.equal((await wrong()).status, 401);
    const limited = await wrong();
    assert.equal(limited.status, 429);
    assert.equal(limited.json.error.code, 'web.rate_limited');
    assert.ok(Number(limited.headers['retry-after']) > 0);
    // even the right password waits until the window has passed
    const right = await call('POST', '/api/login', { headers: { 'Content-Type': 'application/json' }, body: '{"password":"correct horse"}' });
    assert.equal(right.status, 429);
    now += 5 * 60_000 + 1;
    await login();
  });

  it('login bodies are bounded and must be JSON from this page', async () => {
    const big = await call('POST', '/api/login', { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ password: 'x'.repeat(10_000) }) });
    assert.equal(big.status, 413);
    assert.equal((await call('POST', '/api/login', { headers: { 'Content-Type': 'text/plain' }, body: 'password=x' })).status, 415);
    const cross = await call('POST', '/api/login', { headers: { 'Content-Type': 'application/json', Origin: 'http://evil.example' }, body: '{"password":"correct horse"}' });
    assert.equal(cross.status, 403);
    assert.equal(cross.json.error.code, 'web.csrf');
  });

  it('a change needs a session (401) and its CSRF token from this origin (403)', async () => {
    const s = await login();
    const pkg = Buffer.alloc(2048, 1);
    const anon = await call('POST', '/api/upload?name=a.edgepkg', { headers: { 'Content-Length': pkg.length }, body: pkg });
    assert.equal(anon.status, 401);
    assert.equal(anon.json.error.code, 'web.login_required');
    const noCsrf = await call('POST', '/api/upload?name=a.edgepkg', { headers: { Cookie: s.cookie, 'Content-Length': pkg.length }, body: pkg });
    assert.equal(noCsrf.status, 403);
    assert.equal(noCsrf.json.error.code, 'web.csrf');
    const wrongCsrf = await call('POST', '/api/upload?name=a.edgepkg', { headers: { Cookie: s.cookie, 'X-CSRF-Token': s.csrf.slice(1), 'Content-Length': pkg.length }, body: pkg });
    assert.equal(wrongCsrf.status, 403);
    const crossSite = await call('POST', '/api/upload?name=a.edgepkg', {
      headers: { Cookie: s.cookie, 'X-CSRF-Token': s.csrf, 'Sec-Fetch-Site': 'cross-site', 'Content-Length': pkg.length },
      body: pkg,
    });
    assert.equal(crossSite.status, 403);
    assert.deepEqual(readdirSync(inbox), [], 'nothing reached the inbox');
  });

  it('an expired session is refused', async () => {
    const s = await login();
    now += 61_000;
    const r = await call('POST', '/api/logout', { headers: { Cookie: s.cookie, 'X-CSRF-Token': s.csrf } });
    assert.equal(r.status, 401);
    assert.equal(r.json.error.code, 'web.login_required');
    assert.equal((await call('GET', '/api/session', { headers: { Cookie: s.cookie } })).json.logged_in, false);
  });

  it('an upload lands in the inbox by rename from .part, under a cleaned name', async () => {
    const s = await login();
    const pkg = Buffer.alloc(4096, 2);
    const r = await call('POST', `/api/upload?name=${encodeURIComponent('../../etc/x y.edgepkg')}`, {
      headers: { Cookie: s.cookie, 'X-CSRF-Token': s.csrf, 'Content-Length': pkg.length },
      body: pkg,
    });
    assert.equal(r.status, 202, r.body);
    const names = readdirSync(inbox);
    assert.equal(names.length, 1);
    assert.match(names[0]!, /^web-\d{8}T\d{6}Z-x_y\.edgepkg$/);
    assert.deepEqual(readFileSync(join(inbox, names[0]!)), pkg);
    rmSync(join(inbox, names[0]!));
  });

  it('a dropped upload, a body longer than announced or over the size limit leaves nothing in the inbox', async () => {
    const s = await login();
    // announce 512 KiB, send 100 KiB, drop the connection
    await new Promise<void>((resolve) => {
      const sock = connect(port, '127.0.0.1', () => {
        sock.write(`POST /api/upload?name=d.edgepkg HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${s.cookie}\r\nX-CSRF-Token: ${s.csrf}\r\nContent-Length: ${512 * 1024}\r\n\r\n`);
        sock.write(Buffer.alloc(100 * 1024, 3), () => setTimeout(() => (sock.destroy(), resolve()), 200));
      });
    });
    for (let i = 0; i < 50 && readdirSync(inbox).length; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(readdirSync(inbox), [], 'no .part and no package after a dropped connection');
    const big = await call('POST', '/api/upload?name=b.edgepkg', { headers: { Cookie: s.cookie, 'X-CSRF-Token': s.csrf, 'Content-Length': 2 * 1024 * 1024 }, body: Buffer.alloc(16) });
    assert.equal(big.status, 413);
    assert.equal(big.json.error.code, 'web.too_large');
    assert.deepEqual(readdirSync(inbox), []);
  });

  it('diagnostics: only with a session; history, status and logs, never keys or the password hash', async () => {
    assert.equal((await call('GET', '/api/diagnostics')).status, 401);
    const s = await login();
    mkdirSync(join(dir, 'state', 'logs'), { recursive: true });
    writeFileSync(join(dir, 'state', 'logs', 'caisson.log'), 'a log line\n');
    const out = join(dir, 'diag.tar.gz');
    const r = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/api/diagnostics', headers: { Host: `127.0.0.1:${port}`, Cookie: s.cookie } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          writeFileSync(out, Buffer.concat(chunks));
          resolve(res.statusCode!);
        });
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(r, 200);
    const list = execFileSync('tar', ['tzf', out], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
    assert.ok(list.includes('caisson-diagnostics/history.json'), list.join(' '));
    assert.ok(list.includes('caisson-diagnostics/status.json'));
    assert.ok(list.includes('caisson-diagnostics/logs/caisson.log'));
    assert.ok(!list.some((n) => /device\.key|web-password|trusted/.test(n)), list.join(' '));
    const all = execFileSync('sh', ['-c', `tar xzOf ${out}`], { encoding: 'utf8' });
    assert.ok(!all.includes('hunter2') && !all.includes('"hash"'));
    assert.match(all, /health\.timeout/);
  });

  it('ignores oversized and malformed cookie headers', async () => {
    assert.equal(parseCookies('a=1; b=2').get('b'), '2');
    assert.equal(parseCookies(`caisson_session=${'x'.repeat(5000)}`).size, 0);
    assert.equal(parseCookies('caisson_session=<script>').size, 0);
    assert.equal(parseCookies(Array.from({ length: 100 }, (_, i) => `c${i}=v`).join('; ')).size, 32);
    const r = await call('GET', '/api/session', { headers: { Cookie: 'x'.repeat(8000) } });
    assert.equal(r.status, 200);
    assert.equal(r.json.logged_in, false);
  });
});

describe('web: API JSON helpers', () => {
  it('describes journal states and outcomes in plain words', () => {
    assert.equal(stepText('loading_image'), 'importing the image into the engine (tags snapshotted before)');
    assert.equal(stepText('switching.renamed_old'), 'replacing the running container (previous one kept) (renamed old)');
    assert.match(stepText('closed:rolled_back'), /previous version runs again/);
    assert.equal(stepText('made_up'), 'made_up');
  });

  it('an open update says what it is doing now', () => {
    const v = updateView(
      {
        id: 'u-1', kind: 'update', source: 'inbox', package_file: 'p', package_id: null, package_version: null, service: 'web', from_image: null, to_image: null,
        from_version: '1.0.0', to_version: '1.1.0', state: 'health_checking', outcome: null, error_code: null, error_message: null, error_next: null, data: '{}',
        medium_uuid: null, started_at: '2026-01-01T00:00:00Z', finished_at: null, closed: 0,
      },
      [{ state: 'received', at: '2026-01-01T00:00:00Z', detail: null }],
    );
    assert.equal(v.outcome, null);
    assert.equal(v.summary, 'In progress: new version started; waiting for it to prove healthy.');
    assert.equal(v.error, null);
    assert.equal(v.steps[0]!.text, 'package seen; staging folder chosen');
  });

  it('inbox names are cleaned: no folders, no hidden names, always .edgepkg', () => {
    const at = new Date('2026-03-16T18:30:00.123Z');
    assert.equal(inboxNameFor('web-1.1.0.edgepkg', at), 'web-20260316T183000Z-web-1.1.0.edgepkg');
    assert.equal(inboxNameFor('../../etc/passwd', at), 'web-20260316T183000Z-passwd.edgepkg');
    assert.equal(inboxNameFor('C:\\x\\.hidden.edgepkg', at), 'web-20260316T183000Z-hidden.edgepkg');
    assert.equal(inboxNameFor(null, at), 'web-20260316T183000Z-upload.edgepkg');
    assert.equal(inboxNameFor('<img src=x onerror=alert(1)>', at), 'web-20260316T183000Z-img_src_x_onerror_alert_1__.edgepkg');
  });
});
