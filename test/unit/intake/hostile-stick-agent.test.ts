// The agent (fake pipeline, real tmpfs and FUSE mounts) against sticks that hold too many
// packages or stop answering: it takes what the limit allows, says why in one FAILED line,
// and keeps working (LED, inbox) whatever the stick does. Needs root.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, type InboxDone, type StickDone } from '../../../agent/intake/agent.js';
import { parseAgentConfig } from '../../../agent/config/agent.js';
import { fuseAvailable, mountHungStick, type HungStick } from '../../support/hung-stick.js';
import { FakePipeline, collectLog, mediaEvent, mountStick, once, readLed, removeTree, tempDir, testConfig, unmount, writePackage } from '../../support/intake-helpers.js';

describe('agent and hostile sticks (fake pipeline)', function () {
  this.timeout(90_000);
  let root: string;
  let pipeline: FakePipeline;
  let agent: Agent | undefined;
  let hung: HungStick | undefined;
  const mounted: string[] = [];

  beforeEach(() => {
    root = tempDir('caisson-agent-hostile-');
    pipeline = new FakePipeline(join(root, 'state'));
    pipeline.delayMs = 5;
  });
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    await hung?.release();
    hung = undefined;
    for (const m of mounted.splice(0)) unmount(m);
    pipeline.close();
    removeTree(root);
  });

  const uuidDir = (uuid: string) => join(root, 'media', uuid);
  const events = () => join(root, 'state', 'media-events');

  async function startAgent(extra = ''): Promise<{ agent: Agent; log: ReturnType<typeof collectLog> }> {
    const log = collectLog();
    const a = new Agent(testConfig(root, extra), pipeline, { log, schedules: false });
    agent = a;
    await a.start();
    return { agent: a, log };
  }

  it('takes at most intake.max_packages_per_stick packages; the rest get one FAILED line saying why', async () => {
    const { agent: a } = await startAgent('max_packages_per_stick = 3');
    const dir = uuidDir('CAFE-0001');
    mountStick(dir);
    mounted.push(dir);
    for (let i = 0; i < 8; i++) writePackage(join(dir, `svc-1.0.${i}.edgepkg`), `1.0.${i}`, { randomBytes: 64 });
    const done = once<StickDone>(a, 'stick-done');
    mediaEvent(events(), 'add', 'CAFE-0001');
    const d = await done;
    assert.equal(pipeline.runs.length, 3, 'packages beyond the limit were applied');
    assert.deepEqual(
      pipeline.runs.map((r) => r.packagePath.split('/').pop()),
      ['svc-1.0.0.edgepkg', 'svc-1.0.1.edgepkg', 'svc-1.0.2.edgepkg'],
    );
    const lines = readFileSync(join(dir, 'caisson-result.txt'), 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 4);
    assert.deepEqual(lines.slice(0, 3).map((l) => l.split(' | ')[0]), ['OK', 'OK', 'OK']);
    assert.match(lines[3]!, /^FAILED \| 5 more packages \(from svc-1\.0\.3\.edgepkg on\) \| not taken \| stick\.too_many_packages: this stick holds 8 packages and this device takes at most 3 from one stick/);
    assert.equal(readdirSync(join(dir, 'caisson-reports')).length, 6, 'one report pair per package taken, none for the rest');
    assert.equal(d.led, 'failure', 'a stick with packages left out is not a success');
    assert.equal(readLed(join(root, 'led')).delay_on, '100');
  });

  it('agent.toml: the limit and the stick timeout are bounded', () => {
    for (const bad of ['max_packages_per_stick = 0', 'max_packages_per_stick = 1.5', 'max_packages_per_stick = 100000', 'stick_timeout_secs = 0']) {
      assert.throws(() => parseAgentConfig(`[intake]\n${bad}\n`), /config|intake/, bad);
    }
    const c = parseAgentConfig('[intake]\nmax_packages_per_stick = 5\nstick_timeout_secs = 2.5\n');
    assert.equal(c.maxPackagesPerStick, 5);
    assert.equal(c.stickTimeoutMs, 2500);
  });

  it('the default limit is 20', async () => {
    const { agent: a } = await startAgent();
    assert.equal(a.config.maxPackagesPerStick, 20);
    const dir = uuidDir('CAFE-0002');
    mountStick(dir);
    mounted.push(dir);
    for (let i = 0; i < 23; i++) writePackage(join(dir, `svc-2.0.${String(i).padStart(2, '0')}.edgepkg`), `2.0.${i}`, { randomBytes: 16 });
    const done = once<StickDone>(a, 'stick-done');
    mediaEvent(events(), 'add', 'CAFE-0002');
    await done;
    assert.equal(pipeline.runs.length, 20);
    assert.match(readFileSync(join(dir, 'caisson-result.txt'), 'utf8'), /^FAILED \| 3 more packages \(from svc-2\.0\.20\.edgepkg on\)/m);
  });

  it('a stick that stops answering ends as failure while the inbox keeps working', async () => {
    assert.ok(fuseAvailable(), 'this test needs /dev/fuse (a real filesystem that stops answering)');
    const { agent: a, log } = await startAgent('stick_timeout_secs = 1');
    hung = await mountHungStick(uuidDir('DEAD-0001'));
    const done = once<StickDone>(a, 'stick-done');
    mediaEvent(events(), 'add', 'DEAD-0001');
    // while the stick hangs, an inbox package is taken and answered
    const inboxDone = once<InboxDone>(a, 'inbox-done');
    writePackage(join(root, 'inbox', 'inbox-3.0.0.edgepkg'), '3.0.0', { randomBytes: 64 });
    const inbox = await inboxDone;
    assert.equal(inbox.result.outcome, 'committed');
    const d = await done;
    assert.equal(d.led, 'failure');
    assert.equal(d.delivery.written, false);
    assert.ok(log.lines.some((l) => l.message === 'the stick does not answer; it is not used'), JSON.stringify(log.lines));
    assert.equal(readLed(join(root, 'led')).delay_on, '100', 'fast blink: the stick failed');
  });
});
