// The status page end to end in a real headless browser: Debian's chromium driven by
// playwright-core (never a downloaded browser), `caisson agent` as its own process (the
// compiled CLI), the real pipeline and Docker engine. Objects are named caisson-webui-*,
// host ports 18230 (the service) and 18231 (the page). Screenshots go to test/output/web/.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { buildPackage } from '../../agent/package/builder.js';
import { CLI, REPO_ROOT, caisson, ensureBuilt } from '../support/cli.js';
import { buildTestImage, docker, dockerOk, removeTestImages } from '../support/images.js';
import { dockerServiceToml } from '../integration/pipeline-support.js';

const PREFIX = 'caisson-webui-';
const CONTAINER = `${PREFIX}web`;
const REPO = `${PREFIX}web`;
const SERVICE_PORT = 18230;
const PAGE_PORT = 18231;
const PAGE = `http://127.0.0.1:${PAGE_PORT}`;
const LABEL = 'caisson.test=own';
const PASSWORD = 'correct horse battery';
const IDLE_SECS = 8;
export const SCREENSHOTS = join(REPO_ROOT, 'test', 'output', 'web');
const CHROMIUM = '/usr/bin/chromium';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 90_000, every = 100): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await sleep(every);
  }
}

async function serviceVersion(): Promise<string> {
  try {
    const r = await fetch(`http://127.0.0.1:${SERVICE_PORT}/version`, { signal: AbortSignal.timeout(2000) });
    return r.ok ? (await r.text()).trim() : '';
  } catch {
    return '';
  }
}

function removeOurContainers(): void {
  const ids = docker('ps', '-aq', '--filter', `name=^/${PREFIX}`).split('\n').filter(Boolean);
  if (ids.length) spawnSync('docker', ['rm', '-f', '-v', ...ids], { stdio: 'ignore' });
}

describe('e2e: the status page in a real browser', function () {
  this.timeout(600_000);
  let work: string;
  let configPath: string;
  let inbox: string;
  let agent: ChildProcess | undefined;
  let agentLog = '';
  let agentExit: Promise<unknown> | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  const pkgs: Record<string, string> = {};

  async function shot(name: string, p: Page = page): Promise<void> {
    await p.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  async function login(password = PASSWORD): Promise<void> {
    await page.fill('#password', password);
    await page.click('#login-button');
  }

  /** Record every "Now:" step and headline the page shows, as it shows them. */
  async function recordLive(): Promise<void> {
    // a plain string: the test runner's transpiler must not add helpers the page lacks
    await page.evaluate(`(() => {
      window.seen = [];
      const note = () => {
        const text = (id) => (document.getElementById(id) || {}).textContent || '';
        const entry = text('live-headline') + ' | ' + text('live-step') + ' | ' + text('live-health') + ' | steps ' + document.querySelectorAll('#live-body .steps li').length;
        if (window.seen[window.seen.length - 1] !== entry) window.seen.push(entry);
      };
      new MutationObserver(note).observe(document.getElementById('live-body'), { childList: true, subtree: true, characterData: true });
    })()`);
  }

  before(async function () {
    assert.ok(dockerOk('info'), 'the Docker engine must answer (bash scripts/ensure-docker.sh)');
    assert.ok(existsSync(CHROMIUM), 'chromium must be installed (bash scripts/ensure-browser.sh)');
    ensureBuilt();
    mkdirSync(SCREENSHOTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'caisson-webui-'));
    inbox = join(work, 'inbox');
    for (const d of ['media', 'state', 'keys', 'pkg']) mkdirSync(join(work, d), { recursive: true });
    removeOurContainers();

    buildTestImage({ ref: `${REPO}:1.0.0`, version: '1.0.0' });
    buildTestImage({ ref: `${REPO}:1.1.0`, version: '1.1.0', paddingBytes: 24 * 1024 * 1024 });
    buildTestImage({ ref: `${REPO}:1.2.0`, version: '1.2.0', behaviour: 'exit' });
    for (const v of ['1.1.0', '1.2.0']) {
      const out = join(work, 'pkg', `web-${v}.edgepkg`);
      await buildPackage({ imageRef: `${REPO}:${v}`, service: 'web', serviceRevision: 'web-v1', platform: 'linux/amd64', version: v, out });
      pkgs[v] = out;
      spawnSync('docker', ['rmi', '-f', `${REPO}:${v}`], { stdio: 'ignore' });
    }
    docker('run', '-d', '--name', CONTAINER, '--label', LABEL, '--stop-timeout', '1', '-e', 'API_TOKEN=s3cr3t-never-shown', '-p', `127.0.0.1:${SERVICE_PORT}:8080`, `${REPO}:1.0.0`);
    await waitFor('the service to answer', async () => (await serviceVersion()) === '1.0.0', 20_000);

    const services = join(work, 'services.toml');
    writeFileSync(
      services,
      'catalog_version = 1\n\n' +
        dockerServiceToml({ name: 'web', revision: 'web-v1', container: CONTAINER, image: `${REPO}:1.0.0`, port: SERVICE_PORT, timeoutSecs: 8, stableSecs: 3 }),
    );
    configPath = join(work, 'agent.toml');
    writeFileSync(
      configPath,
      `media_root = "${join(work, 'media')}"
inbox = "${inbox}"
state_dir = "${join(work, 'state')}"
services = "${services}"
trusted_keys_dir = "${join(work, 'keys')}"
device_class = "kiosk-v2"
[intake]
check_interval_secs = 0.2
[web]
enabled = true
port = ${PAGE_PORT}
session_idle_secs = ${IDLE_SECS}
`,
    );
    const passwd = caisson(['web', 'passwd', '--config', configPath], { input: `${PASSWORD}\n` });
    assert.equal(passwd.code, 0, passwd.stderr);

    const child = spawn(process.execPath, [CLI, 'agent', '--config', configPath], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TZ: 'Europe/Berlin' },
    });
    child.stdout!.on('data', (d: Buffer) => (agentLog += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (agentLog += d.toString()));
    agentExit = new Promise((resolve) => child.on('exit', resolve));
    agent = child;
    await waitFor(`the status page to listen\n${agentLog}`, () => agentLog.includes('status page listening'), 60_000);

    context = await chromium.launchPersistentContext(join(work, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      viewport: { width: 1280, height: 900 },
      locale: 'en-GB',
      timezoneId: 'UTC',
    });
    page = context.pages()[0] ?? (await context.newPage());
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      agent.kill('SIGTERM');
      await Promise.race([agentExit, sleep(30_000)]);
      if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
    }
    removeOurContainers();
    removeTestImages(['1.0.0', '1.1.0', '1.2.0'].map((v) => `${REPO}:${v}`));
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('lists the services of the real engine, the device ID and class, signatures, and times in the device zone', async () => {
    await page.goto(PAGE);
    const card = page.locator('[data-service="web"]');
    await card.waitFor();
    await page.waitForFunction(() => document.getElementById('connection')?.textContent?.includes('Live'));
    const text = await card.innerText();
    assert.match(text, /● running/);
    assert.ok(text.includes(`${REPO}:1.0.0`), text);
    const device = caisson(['device', 'show', '--config', configPath, '--json']);
    assert.equal(device.code, 0, device.stderr);
    assert.equal(await page.textContent('#device-id'), device.json.id);
    assert.equal(await page.textContent('#device-class'), 'kiosk-v2');
    assert.match((await page.textContent('#signatures'))!, /^Not required/);
    // the device runs in Europe/Berlin, the browser in UTC: the page shows the device's zone
    assert.match((await page.textContent('#device-time'))!, /\(Europe\/Berlin\)$/);
    assert.match((await page.textContent('#device-time'))!, /GMT\+1|CET/);
    const body = await page.content();
    assert.ok(!body.includes('s3cr3t-never-shown'), 'container environment values never reach the page');
    await shot('status');
    await page.setViewportSize({ width: 390, height: 844 });
    await shot('status-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('refuses a wrong password and shows why; nothing can be changed', async () => {
    assert.equal(await page.isVisible('#login-form'), true);
    // by keyboard alone: Tab to the password field, type, Enter
    for (let i = 0; i < 10 && (await page.evaluate('document.activeElement && document.activeElement.id')) !== 'password'; i++) await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement.id'), 'password');
    await page.keyboard.type('not the password');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /Login refused: wrong password/.test(document.getElementById('login-message')?.textContent ?? ''));
    assert.equal(await page.isVisible('#operator-tools'), false);
  });

  it('an upload with the right password updates the real service; the page shows each step live and the result', async () => {
    await page.reload();
    await page.locator('[data-service="web"]').waitFor();
    await login();
    await page.locator('#operator-tools').waitFor({ state: 'visible' });
    await recordLive();
    await page.setInputFiles('#upload-file', pkgs['1.1.0']!);
    await page.click('#upload-button');
    await page.waitForFunction(() => /Uploaded/.test(document.getElementById('upload-status')?.textContent ?? ''), undefined, { timeout: 60_000 });
    // while it runs, the CLI keeps working beside the page
    await page.waitForFunction(() => /In progress/.test(document.getElementById('live-headline')?.textContent ?? ''), undefined, { timeout: 60_000 });
    const history = caisson(['history', 'list', '--json', '--state-dir', join(work, 'state')]);
    assert.equal(history.code, 0, history.stderr);
    await page.waitForFunction(() => /Health window: \d+ s left/.test(document.getElementById('live-health')?.textContent ?? ''), undefined, { timeout: 60_000 });
    await shot('update-live');
    await page.waitForFunction(() => /✓ Updated/.test(document.getElementById('live-headline')?.textContent ?? ''), undefined, { timeout: 120_000 });
    const seen = ((await page.evaluate('window.seen')) as string[]).join('\n');
    for (const step of ['importing the image', 'replacing the running container', 'new version started; waiting for it to prove healthy']) {
      assert.ok(seen.includes(`Now: ${step}`), `the page showed "${step}" live:\n${seen}`);
    }
    const counts = new Set([...seen.matchAll(/In progress.*steps (\d+)/g)].map((m) => m[1]));
    assert.ok(counts.size >= 4, `the step list grew while the update ran:\n${seen}`);
    assert.match(seen, /Health window: \d+ s left/);
    const steps = await page.locator('#live-body .steps li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-state')));
    for (const s of ['received', 'staged', 'validated', 'loading_image', 'image_loaded', 'switching', 'health_checking', 'committing', 'closed:committed']) {
      assert.ok(steps.includes(s), `step ${s} in ${steps.join(' ')}`);
    }
    assert.match((await page.textContent('#live-headline'))!, /✓ Updated web → 1\.1\.0/);
    assert.equal(await serviceVersion(), '1.1.0');
    await page.waitForFunction(() => /1\.1\.0/.test(document.querySelector('[data-service="web"]')?.textContent ?? ''));
    assert.match((await page.locator('#history li').first().innerText()), /✓ Updated/);
    await shot('update-done');
    const processed = readdirSync(join(inbox, 'processed'));
    const report = processed.find((n) => /web-1\.1\.0.*\.json$/.test(n));
    assert.ok(report, processed.join(' '));
    const device = caisson(['device', 'show', '--config', configPath, '--json']).json;
    assert.deepEqual(JSON.parse(readFileSync(join(inbox, 'processed', report), 'utf8')).device, { id: device.id, public_key: device.public_key });
    assert.ok(!readdirSync(inbox).some((n) => n.endsWith('.part')), 'no partial upload left');
  });

  it('refuses a change without the CSRF token, even with a valid session cookie', async () => {
    // the update above took longer than the idle time: start from what the server says
    await page.reload();
    await page.locator('[data-service="web"]').waitFor();
    await page.waitForFunction(() => !document.getElementById('login-form')!.hidden || !document.getElementById('operator-tools')!.hidden);
    if (await page.isVisible('#login-form')) await login();
    await page.locator('#operator-tools').waitFor({ state: 'visible' });
    const r = await page.evaluate(async () => {
      const res = await fetch('/api/upload?name=x.edgepkg', { method: 'POST', body: new Uint8Array(1024) });
      return { status: res.status, body: await res.json() };
    });
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'web.csrf');
    const logout = await page.evaluate(async () => (await fetch('/api/logout', { method: 'POST' })).status);
    assert.equal(logout, 403);
    assert.deepEqual(readdirSync(inbox).filter((n) => n.endsWith('.edgepkg') || n.endsWith('.part')), []);
  });

  it('refuses an expired session: the upload is not taken and the page asks for the login again', async () => {
    await sleep((IDLE_SECS + 1) * 1000);
    await page.setInputFiles('#upload-file', pkgs['1.2.0']!);
    await page.click('#upload-button');
    await page.waitForFunction(() => /Upload refused: log in first/.test(document.getElementById('upload-status')?.textContent ?? ''));
    await page.locator('#login-form').waitFor({ state: 'visible' });
    assert.match((await page.textContent('#login-message'))!, /session has ended/);
    assert.deepEqual(readdirSync(inbox).filter((n) => n.endsWith('.edgepkg') || n.endsWith('.part')), []);
  });

  it('a failing package: the page shows the rollback, its reason, error code and next step', async () => {
    await login();
    await page.locator('#operator-tools').waitFor({ state: 'visible' });
    await page.setInputFiles('#upload-file', pkgs['1.2.0']!);
    await page.click('#upload-button');
    await page.waitForFunction(() => /↩ Rolled back/.test(document.getElementById('live-headline')?.textContent ?? ''), undefined, { timeout: 120_000 });
    const reason = await page.locator('#live-body .reason').innerText();
    assert.match(reason, /Reason: /);
    assert.match(reason, /Error code: (service\.start_failed|health\.[a-z_]+)/);
    assert.match(reason, /Next step: /);
    const steps = await page.locator('#live-body .steps li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-state')));
    assert.ok(steps.includes('rolling_back') && steps.includes('closed:rolled_back'), steps.join(' '));
    assert.match((await page.textContent('#live-summary'))!, /rolled back: the previous version runs again/);
    assert.equal(await serviceVersion(), '1.1.0', 'the previous version serves again');
    await page.locator('#history li').first().locator('summary').click();
    await shot('rollback');
  });

  it('downloads a diagnostics bundle after login', async () => {
    // logged out: the session cookie dropped (expiry itself is the test above)
    await context!.clearCookies();
    await page.click('#diagnostics-link');
    await page.locator('#login-form').waitFor({ state: 'visible' });
    await login();
    await page.locator('#operator-tools').waitFor({ state: 'visible' });
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#diagnostics-link')]);
    const file = join(work, 'diag.tar.gz');
    await download.saveAs(file);
    const list = spawnSync('tar', ['tzf', file], { encoding: 'utf8' }).stdout;
    assert.match(list, /caisson-diagnostics\/history\.json/);
    assert.match(list, /caisson-diagnostics\/reports\/processed\/.*\.json/);
    assert.doesNotMatch(list, /device\.key|web-password/);
    const all = spawnSync('sh', ['-c', `tar xzOf '${file}'`], { encoding: 'utf8' }).stdout;
    assert.ok(!all.includes('s3cr3t-never-shown'));
  });
});
