// The agent with the fake pipeline (helpers.ts): sticks are real tmpfs mounts announced by
// event files exactly as udev/caisson-media writes them, the LED is a folder of plain files.
// What is under test is the intake, queue, reports and LED; the pipeline's only role is
// its UpdateResult, so a real one adds nothing here (test/e2e uses the real one).
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, type InboxDone, type StickDone } from '../../../agent/intake/agent.js';
import type { LedState } from '../../../agent/report/led.js';
import type { UpdateResult } from '../../../agent/pipeline/types.js';
import { FakePipeline, collectLog, mediaEvent, mountStick, once, readLed, removeTree, remount, sleep, tempDir, testConfig, unmount, waitFor, writePackage } from '../../support/intake-helpers.js';

describe('agent (fake pipeline)', function () {
  this.timeout(60_000);
  let root: string;
  let pipeline: FakePipeline;
  let agent: Agent | undefined;
  const mounted: string[] = [];

  beforeEach(() => {
    root = tempDir('caisson-agent-');
    pipeline = new FakePipeline(join(root, 'state'));
  });
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    for (const m of mounted.splice(0)) unmount(m);
    pipeline.close();
    removeTree(root);
  });

  const uuidDir = (uuid: string) => join(root, 'media', uuid);
  const events = () => join(root, 'state', 'media-events');
  const led = () => readLed(join(root, 'led'));
  const resultLines = (uuid: string) => readFileSync(join(uuidDir(uuid), 'caisson-result.txt'), 'utf8').trimEnd().split('\n');
  const words = (uuid: string) => resultLines(uuid).map((l) => l.split(' | ')[0]);

  function stick(uuid: string, packages: Record<string, string | Buffer>, opts: { readOnly?: boolean } = {}): string {
    const dir = uuidDir(uuid);
    mountStick(dir);
    mounted.push(dir);
    for (const [name, content] of Object.entries(packages)) {
      if (typeof content === 'string') writePackage(join(dir, name), content);
      else writeFileSync(join(dir, name), content);
    }
    if (opts.readOnly) remount(dir, 'ro');
    return dir;
  }

  async function startAgent(extra = ''): Promise<{ agent: Agent; ledLog: { state: LedState; resultFile: boolean }[]; log: ReturnType<typeof collectLog> }> {
    const log = collectLog();
    const a = new Agent(testConfig(root, extra), pipeline, { log, schedules: false });
    const ledLog: { state: LedState; resultFile: boolean }[] = [];
    const set = a.led.set.bind(a.led);
    a.led.set = (state: LedState) => {
      if (state === a.led.state) return set(state); // Led skips repeats too
      // what is on the sticks at the moment the LED changes
      const sticks = existsSync(join(root, 'media')) ? readdirSync(join(root, 'media')) : [];
      ledLog.push({ state, resultFile: sticks.some((u) => existsSync(join(uuidDir(u), 'caisson-result.txt'))) });
      set(state);
    };
    agent = a;
    await a.start();
    return { agent: a, ledLog, log };
  }

  it('applies the packages on an inserted stick, writes the report first, then shows success until removal', async () => {
    const { agent: a, ledLog } = await startAgent();
    assert.deepEqual(led(), { trigger: 'none', brightness: '0' });
    stick('AAAA-0001', { 'frontend-1.1.0.edgepkg': '1.1.0', 'backend-2.0.0.edgepkg': '2.0.0', 'notes.txt': Buffer.from('hi') });
    const done = once<StickDone>(a, 'stick-done');
    mediaEvent(events(), 'add', 'AAAA-0001');
    const d = await done;
    assert.equal(d.led, 'success');
    assert.deepEqual(words('AAAA-0001'), ['OK', 'OK']);
    assert.match(resultLines('AAAA-0001')[0]!, /^OK \| backend-2\.0\.0\.edgepkg \| service frontend \| 1\.0\.0 -> 2\.0\.0 \|/);
    assert.equal(readdirSync(join(uuidDir('AAAA-0001'), 'caisson-reports')).length, 4);
    assert.deepEqual(led(), { trigger: 'none', brightness: '1', delay_on: '1000', delay_off: '1000' });
    assert.deepEqual(
      ledLog.map((l) => l.state),
      ['idle', 'working', 'success'],
    );
    assert.equal(ledLog.find((l) => l.state === 'working')!.resultFile, false);
    assert.equal(ledLog.find((l) => l.state === 'success')!.resultFile, true, 'the report was on the stick before the LED said done');
    await sleep(200);
    assert.equal(led().brightness, '1', 'the result stays while the stick is in');
    const removed = once(a, 'stick-removed');
    mediaEvent(events(), 'remove', 'AAAA-0001');
    await removed;
    assert.deepEqual(led(), { trigger: 'none', brightness: '0', delay_on: '1000', delay_off: '1000' });
  });

  it('shows failure (fast blink) when a package fails, and keeps running', async () => {
    const { agent: a } = await startAgent();
    stick('BBBB-0001', { 'bad-1.1.0.edgepkg': '1.1.0', 'good-1.2.0.edgepkg': '1.2.0' });
    const done = once<StickDone>(a, 'stick-done');
    mediaEvent(events(), 'add', 'BBBB-0001');
    assert.equal((await done).led, 'failure');
    assert.deepEqual(words('BBBB-0001'), ['FAILED', 'OK']);
    assert.match(resultLines('BBBB-0001')[0]!, /rolled back to 1\.0\.0; health\.timeout: /);
    assert.deepEqual(led(), { trigger: 'timer', brightness: '0', delay_on: '100', delay_off: '100' });
    // a stick without packages: told so, failure light
    mediaEvent(events(), 'remove', 'BBBB-0001');
    stick('CCCC-0001', {});
    const done2 = once<StickDone>(a, 'stick-done', (s) => s.uuid === 'CCCC-0001');
    mediaEvent(events(), 'add', 'CCCC-0001');
    assert.equal((await done2).led, 'failure');
    assert.deepEqual(words('CCCC-0001'), ['NO PACKAGE']);
  });

  it('answers a re-inserted stick with ALREADY INSTALLED without applying again', async () => {
    const { agent: a } = await startAgent();
    stick('DDDD-0001', { 'frontend-1.3.0.edgepkg': '1.3.0' });
    let done = once<StickDone>(a, 'stick-done');
    mediaEvent(events(), 'add', 'DDDD-0001');
    await done;
    assert.deepEqual(words('DDDD-0001'), ['OK']);
    mediaEvent(events(), 'remove', 'DDDD-0001');
    await once(a, 'stick-removed');
    done = once<StickDone>(a, 'stick-done');
    mediaEvent(events(), 'add', 'DDDD-0001');
    assert.equal((await done).led, 'success');
    assert.deepEqual(words('DDDD-0001'), ['ALREADY INSTALLED']);
    assert.equal(pipeline.committed.size, 1);
  });

  it('repeated add events for a stick that is in do not queue its packages again', async () => {
    const { agent: a } = await startAgent();
    stick('EEEE-0001', { 'frontend-1.4.0.edgepkg': '1.4.0' });
    const done = once<StickDone>(a, 'stick-done');
    mediaEvent(events(), 'add', 'EEEE-0001');
    mediaEvent(events(), 'add', 'EEEE-0001');
    await done;
    await sleep(250); // the second event was seen and ignored
    await a.idle();
    assert.equal(pipeline.runs.length, 1);
  });

  it('read-only stick: the outcome is kept and written at its next writable insertion', async () => {
    const { agent: a } = await startAgent();
    const dir = stick('FFFF-0001', { 'frontend-1.5.0.edgepkg': '1.5.0' }, { readOnly: true });
    let done = once<StickDone>(a, 'stick-done');
    mediaEvent(events(), 'add', 'FFFF-0001');
    const first = await done;
    assert.equal(first.delivery.written, false);
    assert.equal(first.led, 'success', 'the LED still tells the outcome');
    assert.equal(existsSync(join(dir, 'caisson-result.txt')), false);
    assert.equal(a.reports.pending('FFFF-0001').length, 1);
    mediaEvent(events(), 'remove', 'FFFF-0001');
    await once(a, 'stick-removed');
    remount(dir, 'rw');
    done = once<StickDone>(a, 'stick-done');
    mediaEvent(events(), 'add', 'FFFF-0001');
    const second = await done;
    assert.equal(second.delivery.written, true);
    assert.deepEqual(words('FFFF-0001'), ['OK', 'ALREADY INSTALLED']);
    assert.equal(a.reports.pendingCount(), 0);
  });

  it('a stick removed while its packages wait: the rest are skipped, the finished one is reported at its return', async () => {
    pipeline.delayMs = 400;
    const { agent: a } = await startAgent();
    stick('ABCD-0001', { 'a-1.0.1.edgepkg': '1.0.1', 'b-1.0.2.edgepkg': '1.0.2', 'c-1.0.3.edgepkg': '1.0.3' });
    const done = once<StickDone>(a, 'stick-done');
    mediaEvent(events(), 'add', 'ABCD-0001');
    await waitFor(() => pipeline.runs.length === 1, 'the first package to start');
    mediaEvent(events(), 'remove', 'ABCD-0001');
    await once(a, 'stick-removed');
    await a.idle();
    assert.equal(pipeline.runs.length, 1, 'packages of a removed stick are not started');
    assert.equal(a.reports.pending('ABCD-0001').length, 1);
    assert.equal(led().brightness, '0');
    assert.equal(led().trigger, 'none');
    mediaEvent(events(), 'add', 'ABCD-0001');
    await done;
    assert.deepEqual(words('ABCD-0001'), ['OK', 'ALREADY INSTALLED', 'OK', 'OK']);
  });

  it('two sticks and the inbox with the same package at once: each occurrence once, one install', async () => {
    pipeline.delayMs = 200;
    const { agent: a } = await startAgent();
    const s1 = stick('1111-AAAA', { 'frontend-3.0.0.edgepkg': '3.0.0' });
    stick('2222-BBBB', {});
    copyFileSync(join(s1, 'frontend-3.0.0.edgepkg'), join(uuidDir('2222-BBBB'), 'frontend-3.0.0.edgepkg'));
    const results: UpdateResult[] = [];
    a.on('result', (r: UpdateResult) => results.push(r));
    const d1 = once<StickDone>(a, 'stick-done', (s) => s.uuid === '1111-AAAA');
    const d2 = once<StickDone>(a, 'stick-done', (s) => s.uuid === '2222-BBBB');
    const inboxDone = once<InboxDone>(a, 'inbox-done');
    mediaEvent(events(), 'add', '1111-AAAA');
    mediaEvent(events(), 'add', '2222-BBBB');
    copyFileSync(join(s1, 'frontend-3.0.0.edgepkg'), join(root, 'inbox', 'frontend-3.0.0.edgepkg'));
    await Promise.all([d1, d2, inboxDone]);
    await a.idle();
    assert.equal(results.length, 3);
    assert.equal(pipeline.runs.length, 3);
    assert.equal(pipeline.maxActive, 1, 'one update at a time');
    assert.deepEqual(results.map((r) => r.outcome).sort(), ['already_installed', 'already_installed', 'committed']);
    const allWords = [...words('1111-AAAA'), ...words('2222-BBBB')].sort();
    assert.ok(allWords.includes('ALREADY INSTALLED'));
    assert.equal(readdirSync(join(root, 'inbox', 'processed')).filter((f) => f.endsWith('.edgepkg')).length, 1);
  });

  it('finds a stick that was mounted before the agent started', async () => {
    stick('9999-0001', { 'frontend-4.0.0.edgepkg': '4.0.0' });
    const log = collectLog();
    const a = new Agent(testConfig(root), pipeline, { log, schedules: false });
    agent = a;
    const done = once<StickDone>(a, 'stick-done');
    await a.start();
    assert.equal((await done).led, 'success');
    assert.deepEqual(words('9999-0001'), ['OK']);
  });

  it('inbox: defers packages outside the maintenance window and applies them when it opens', async () => {
    // a window that opened 2 hours ago and lasts 1 minute: closed now
    const opened = new Date(Date.now() - 2 * 3600_000);
    const { agent: a } = await startAgent(
      `[schedules]\nmaintenance_window = "${opened.getMinutes()} ${opened.getHours()} * * *"\nmaintenance_window_minutes = 1`,
    );
    const deferred = once<string>(a, 'deferred');
    writePackage(join(root, 'inbox', 'frontend-5.0.0.edgepkg'), '5.0.0');
    await deferred;
    await sleep(250);
    assert.equal(pipeline.runs.length, 0);
    assert.equal(a.deferredCount, 1);
    // a USB package does not wait
    stick('7777-0001', { 'frontend-5.1.0.edgepkg': '5.1.0' });
    const usb = once<StickDone>(a, 'stick-done');
    mediaEvent(events(), 'add', '7777-0001');
    await usb;
    assert.equal(pipeline.runs.length, 1);
    const done = once<InboxDone>(a, 'inbox-done');
    a.windowOpened();
    const d = await done;
    assert.equal(d.result.outcome, 'committed');
    assert.match(d.movedTo, /processed\/\d{8}T\d{6}Z-frontend-5\.0\.0\.edgepkg$/);
    assert.equal(existsSync(d.movedTo.replace(/\.edgepkg$/, '.json')), true);
    assert.equal(existsSync(d.movedTo.replace(/\.edgepkg$/, '.txt')), true);
  });

  it('inbox: a failing package goes to failed/, a pipeline error does not stop the agent', async () => {
    pipeline.throwOn = /explode/;
    const { agent: a } = await startAgent();
    const seen: InboxDone[] = [];
    a.on('inbox-done', (d: InboxDone) => seen.push(d));
    writePackage(join(root, 'inbox', 'bad-6.0.0.edgepkg'), '6.0.0');
    writePackage(join(root, 'inbox', 'explode-6.0.1.edgepkg'), '6.0.1');
    await waitFor(() => seen.length === 2, 'both inbox packages');
    writePackage(join(root, 'inbox', 'frontend-6.0.2.edgepkg'), '6.0.2');
    await waitFor(() => seen.length === 3, 'the next package');
    const byFile = Object.fromEntries(seen.map((d) => [d.file.split('/').pop(), d]));
    assert.equal(byFile['bad-6.0.0.edgepkg']!.result.outcome, 'rolled_back');
    assert.equal(byFile['explode-6.0.1.edgepkg']!.result.error?.code, 'internal.error');
    assert.equal(byFile['frontend-6.0.2.edgepkg']!.result.outcome, 'committed');
    const failed = readdirSync(join(root, 'inbox', 'failed')).filter((f) => f.endsWith('.edgepkg'));
    assert.equal(failed.length, 2);
  });

  it('recovered updates from a stick are reported when that stick comes back', async () => {
    pipeline.db
      .prepare(`INSERT INTO updates (id, kind, source, package_file, state, medium_uuid, started_at, closed) VALUES ('r1', 'update', 'usb', 'x.edgepkg', 'rolled_back', '5555-0001', '2026-01-01T00:00:00Z', 1)`)
      .run();
    pipeline.recovered = [
      {
        update_id: 'r1',
        outcome: 'rolled_back',
        source: 'usb',
        package_file: '/media/caisson/5555-0001/frontend-7.0.0.edgepkg',
        service: 'frontend',
        error: { code: 'update.interrupted', message: 'power was lost during the switch', next: 'Try again.' },
        started_at: '2026-01-01T00:00:00.000Z',
        finished_at: '2026-01-01T00:01:00.000Z',
        steps: [],
      },
    ];
    const { agent: a } = await startAgent();
    assert.equal(a.reports.pending('5555-0001').length, 1);
    stick('5555-0001', {});
    const done = once<StickDone>(a, 'stick-done');
    mediaEvent(events(), 'add', '5555-0001');
    assert.equal((await done).led, 'failure');
    assert.match(resultLines('5555-0001')[0]!, /^FAILED \| frontend-7\.0\.0\.edgepkg .*update\.interrupted/);
  });
});
