// At start the agent makes sure every service whose last update closed is running: an
// engine restart stops containers whose restart policy is "no" and nothing else would
// start them again. Real engine, the real pipeline, the agent in-process.
// Objects are named caisson-as-*, host ports 18400-18401, label caisson.test=own.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAgentConfig } from '../../agent/config/agent.js';
import { Agent } from '../../agent/intake/agent.js';
import { openPipeline } from '../../agent/pipeline/index.js';
import { openDatabase } from '../../agent/store/db.js';
import { Journal } from '../../agent/store/journal.js';
import { buildTestImage, containerInfo, docker, dockerServiceToml, removeContainers, removeImages, runServiceContainer, writeText } from './pipeline-support.js';

const IMAGE = 'caisson-as/web:1.0.0';
const UPDATED = 'caisson-as-updated';
const UNTOUCHED = 'caisson-as-untouched';

describe('agent start: services an engine restart left stopped', function () {
  this.timeout(120_000);
  let work: string;

  before(function () {
    removeContainers(UPDATED, UNTOUCHED);
    buildTestImage({ ref: IMAGE, version: '1.0.0' });
    work = mkdtempSync(join(tmpdir(), 'caisson-as-'));
  });
  after(function () {
    removeContainers(UPDATED, UNTOUCHED);
    removeImages(IMAGE);
    rmSync(work, { recursive: true, force: true });
  });

  it('starts a stopped service whose last update closed, says so, and leaves a service Caisson never updated alone', async function () {
    const stateDir = join(work, 'state');
    const servicesPath = writeText(
      join(work, 'services.toml'),
      'catalog_version = 1\n\n' +
        dockerServiceToml({ name: 'updated', revision: 'r1', container: UPDATED, image: IMAGE, port: 18400 }) +
        '\n' +
        dockerServiceToml({ name: 'untouched', revision: 'r1', container: UNTOUCHED, image: IMAGE, port: 18401 }),
    );
    runServiceContainer({ name: UPDATED, image: IMAGE, port: 18400 });
    runServiceContainer({ name: UNTOUCHED, image: IMAGE, port: 18401 });

    // history: one committed update of "updated", none of "untouched"
    mkdirSync(stateDir, { recursive: true });
    const db = openDatabase(stateDir);
    const journal = new Journal(db);
    const id = journal.begin({ kind: 'update', source: 'cli', packageFile: '/x/updated-1.0.0.edgepkg' });
    journal.transition(id, 'committing', { patch: { service: 'updated', to_image: IMAGE, to_version: '1.0.0' } });
    journal.close(id, 'committed');
    db.close();

    // what an engine restart leaves of containers with restart policy "no"
    docker('stop', UPDATED, UNTOUCHED);
    assert.equal(containerInfo(UPDATED)?.running, false);

    const lines: { level: string; message: string; meta?: Record<string, unknown> }[] = [];
    const log = {
      info: (message: string, meta?: Record<string, unknown>) => void lines.push({ level: 'info', message, meta }),
      warn: (message: string, meta?: Record<string, unknown>) => void lines.push({ level: 'warn', message, meta }),
      error: (message: string, meta?: Record<string, unknown>) => void lines.push({ level: 'error', message, meta }),
    };
    const config = parseAgentConfig(
      [
        `media_root = "${join(work, 'media')}"`,
        `inbox = "${join(work, 'inbox')}"`,
        `state_dir = "${stateDir}"`,
        `services = "${servicesPath}"`,
        `trusted_keys_dir = "${join(work, 'no-keys')}"`,
      ].join('\n'),
    );
    mkdirSync(join(work, 'media'), { recursive: true });
    const pipeline = await openPipeline({ servicesPath, stateDir, trustedKeysDir: join(work, 'no-keys'), lockPurpose: 'test agent' });
    const agent = new Agent(config, pipeline, { log, schedules: false });
    try {
      await agent.start();
      assert.equal(containerInfo(UPDATED)?.running, true, 'the updated service runs again');
      assert.equal(containerInfo(UNTOUCHED)?.running, false, 'a service Caisson never updated is left as it was');
      const started = lines.filter((l) => l.message.startsWith('started a service'));
      assert.equal(started.length, 1);
      assert.equal(started[0]!.level, 'warn');
      assert.equal(started[0]!.meta?.service, 'updated');
      assert.equal(started[0]!.meta?.was, 'exited');
    } finally {
      await agent.stop();
      pipeline.close();
    }
  });
});
