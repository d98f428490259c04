// When an engine that goes away mid-import gets the archive again. A real engine cannot be
// made to die at an exact byte of an upload on demand, so this fakes the engine's HTTP API on
// a unix socket (only the calls an import makes); everything else about imports runs
// against the real engine in test/integration.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectDocker } from '../../../agent/runtime/docker-client.js';
import { importImage } from '../../../agent/pipeline/image-import.js';
import { createDockerEngine } from '../../../agent/runtime/engine.js';
import { CaissonError } from '../../../agent/errors.js';

const REF = 'fake/web:1.2.0';
const ID = `sha256:${'a'.repeat(64)}`;
const ARCHIVE_BYTES = 4 * 1024 * 1024;

/** How the fake engine answers each POST /images/load, in order. */
type LoadBehaviour = 'dies-during-upload' | 'dies-after-upload' | 'loads-then-dies' | 'loads';

class FakeEngine {
  readonly loads: LoadBehaviour[] = [];
  loaded = false;
  private server: Server;

  constructor(readonly socketPath: string, private readonly plan: LoadBehaviour[]) {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socketPath, resolve));
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '';
    if (url.includes('/_ping')) return void res.end('OK');
    if (url.includes('/images/json')) {
      res.setHeader('Content-Type', 'application/json');
      return void res.end(JSON.stringify(this.loaded ? [{ Id: ID, RepoTags: [REF] }] : []));
    }
    if (req.method === 'POST' && url.includes('/images/load')) return this.load(req, res);
    if (req.method === 'DELETE' && url.includes(`/images/${REF}`)) {
      this.loaded = false; // the tag removed (the only image this engine has)
      res.setHeader('Content-Type', 'application/json');
      return void res.end(JSON.stringify([{ Untagged: REF }]));
    }
    res.statusCode = 404;
    res.end('{"message":"not faked"}');
  }

  private load(req: IncomingMessage, res: ServerResponse): void {
    const behaviour = this.plan[this.loads.length] ?? 'loads';
    this.loads.push(behaviour);
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (behaviour === 'dies-during-upload' && received >= ARCHIVE_BYTES / 4) req.socket.destroy();
    });
    req.on('end', () => {
      if (behaviour === 'dies-after-upload') return void req.socket.destroy();
      if (behaviour === 'loads-then-dies') {
        // a dockerd shutting down finishes the load but never answers it
        this.loaded = true;
        return void req.socket.destroy();
      }
      this.loaded = true;
      res.setHeader('Content-Type', 'application/json');
      // what Docker 20.10 sends with quiet=0, the layer's end twice included
      const layer = (current: number) => ({ status: 'Loading layer', progressDetail: { current, total: 4096 }, id: 'l1' });
      const events = [layer(1024), layer(4096), layer(4096), { stream: `Loaded image: ${REF}\n` }];
      res.end(events.map((e) => JSON.stringify(e) + '\n').join(''));
    });
  }
}

describe('image import when the engine goes away (fake engine)', function () {
  this.timeout(30_000);
  let dir: string;
  let archive: string;
  let engine: FakeEngine | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'caisson-import-'));
    archive = join(dir, 'image.tar');
    writeFileSync(archive, Buffer.alloc(ARCHIVE_BYTES, 1));
  });
  afterEach(async () => {
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = async (plan: LoadBehaviour[]) => {
    engine = new FakeEngine(join(dir, 'engine.sock'), plan);
    await engine.listen();
    let uploaded = 0;
    const unpacking: string[] = [];
    const outcome = await importImage(createDockerEngine(connectDocker(engine.socketPath), { stateDir: tmpdir() }), {
      imagePath: archive,
      reference: REF,
      beforeLoad: () => undefined,
      onUploaded: () => uploaded++,
      onUnpack: (layer, done, total) => unpacking.push(`${layer} ${done}/${total}`),
    }).catch((err: unknown) => err);
    return { outcome, uploaded, unpacking, loads: engine.loads };
  };

  it('sends the archive again when the engine went away during the upload', async () => {
    const r = await run(['dies-during-upload', 'loads']);
    assert.equal(r.outcome, ID);
    assert.deepEqual(r.loads, ['dies-during-upload', 'loads']);
    assert.equal(r.uploaded, 1); // only the upload that got through
    assert.deepEqual(r.unpacking, ['l1 1024/4096', 'l1 4096/4096']); // each layer's end once
  });

  it('does not send it again once the engine had all of it (the caller may have removed it)', async () => {
    const r = await run(['dies-after-upload', 'loads']);
    assert.ok(r.outcome instanceof CaissonError);
    assert.equal((r.outcome as CaissonError).code, 'docker.unreachable');
    assert.deepEqual(r.loads, ['dies-after-upload']);
    assert.equal(r.uploaded, 1);
  });

  it('removes the tag a load that was never answered still made (a dockerd restart finishing it)', async () => {
    const r = await run(['loads-then-dies']);
    assert.ok(r.outcome instanceof CaissonError);
    assert.equal((r.outcome as CaissonError).code, 'docker.unreachable');
    assert.deepEqual(r.loads, ['loads-then-dies']);
    assert.equal(engine!.loaded, false, 'the reference is gone again');
  });
});
