// The command line as a newcomer meets it, without an engine: arguments are checked in the
// order a person thinks, read-only commands create nothing and say plainly that there is no
// state yet, and the environment settings stand in for the common options.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { openDatabase } from '../../agent/store/db.js';
import { Journal } from '../../agent/store/journal.js';
import { caisson, ensureBuilt, REPO_ROOT } from '../support/cli.js';

/** Every path under dir (folders too), relative, sorted: what a command may not change. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      out.push(`${relative(dir, p)} ${statSync(p).isDirectory() ? 'dir' : statSync(p).size}`);
      if (statSync(p).isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

/** The environment without any CAISSON_* setting of the machine running the tests. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('CAISSON_')) delete env[k];
  return { ...env, ...extra };
}

describe('CLI first contact (no engine needed)', function () {
  this.timeout(120_000);
  let work: string;
  let catalog: string;
  let nosock: string;

  before(function () {
    this.timeout(300_000);
    ensureBuilt();
  });

  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), 'caisson-first-'));
    catalog = join(work, 'services.toml');
    copyFileSync(join(REPO_ROOT, 'fixtures', 'demo', 'services.toml'), catalog);
    nosock = join(work, 'no-engine.sock'); // no engine answers here: service status is "unknown"
  });

  afterEach(() => rmSync(work, { recursive: true, force: true }));

  describe('arguments in the order a person thinks', () => {
    for (const command of [['package', 'validate'], ['package', 'load', '--yes']]) {
      it(`${command.join(' ')} of a path that does not exist says package.not_found before reading any configuration`, () => {
        const before = tree(work);
        const r = caisson([...command, join(work, 'nosuch.edgepkg'), '--services', join(work, 'missing.toml'), '--state-dir', join(work, 'state')], { env: cleanEnv() });
        assert.equal(r.code, 1, r.stderr);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, /^error package\.not_found: there is no file at .*nosuch\.edgepkg\.\n {2}next: Check the path and try again\.\n$/);
        assert.ok(!r.stderr.includes('catalog'), 'the missing catalog is not what is wrong first');
        assert.deepEqual(tree(work), before, 'no state folder, log or lock');
      });
    }

    it('leaves no history record for a path that does not exist, also with --json', () => {
      const stateDir = join(work, 'state');
      openDatabase(stateDir).close();
      const r = caisson(['package', 'load', '--yes', '--json', join(work, 'nosuch.edgepkg'), '--services', catalog, '--state-dir', stateDir], { env: cleanEnv() });
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.json.outcome, 'error');
      assert.equal(r.json.error.code, 'package.not_found');
      const db = openDatabase(stateDir);
      try {
        assert.deepEqual(new Journal(db).list({ limit: 10 }), []);
      } finally {
        db.close();
      }
    });

    it('a missing catalog says how to create one and names the examples', () => {
      const r = caisson(['service', 'list', '--services', join(work, 'missing.toml'), '--state-dir', join(work, 'state')], { env: cleanEnv() });
      assert.equal(r.code, 1);
      assert.ok(r.stderr.includes(`error config.invalid: there is no service catalog at ${join(work, 'missing.toml')}.`));
      for (const named of ['config/services.toml', 'fixtures/demo/services.toml', 'CAISSON_SERVICES']) assert.ok(r.stderr.includes(named), r.stderr);
    });
  });

  describe('read-only commands on a machine with no state', () => {
    const commands: Array<{ args: string[]; code: number; says: RegExp }> = [
      { args: ['history', 'list'], code: 0, says: /^no history yet: nothing was validated or loaded with the state folder .*\n$/ },
      { args: ['history', 'show', 'last'], code: 1, says: /there is no history record last: nothing was validated or loaded/ },
      { args: ['history', 'show', 'u-20260101T000000Z-000000'], code: 1, says: /there is no history record u-/ },
      { args: ['service', 'list'], code: 0, says: /^SERVICE .*\n(?:[a-z]+ +docker +unknown \(docker\.unreachable\)(?: +-){4}\n)+signatures: (required|NOT required) .*\n$/ },
      { args: ['service', 'show', 'web'], code: 0, says: /^installed_version +- \(nothing installed by Caisson yet\)$/m },
    ];
    for (const c of commands) {
      it(`caisson ${c.args.join(' ')} creates no file or folder and says so plainly`, () => {
        const before = tree(work);
        const r = caisson([...c.args, '--services', catalog, '--state-dir', join(work, 'state', 'deeper'), '--docker-socket', nosock], { env: cleanEnv() });
        assert.equal(r.code, c.code, r.stderr);
        assert.match(c.code === 0 ? r.stdout : r.stderr, c.says);
        assert.deepEqual(tree(work), before);
      });
    }

    it('history list --json is an empty array', () => {
      const r = caisson(['history', 'list', '--json', '--state-dir', join(work, 'state')], { env: cleanEnv() });
      assert.equal(r.code, 0);
      assert.deepEqual(r.json, []);
      assert.equal(existsSync(join(work, 'state')), false);
    });

    it('reading an existing state folder adds no file to it (no -wal or -shm companions)', () => {
      const stateDir = join(work, 'state');
      const db = openDatabase(stateDir);
      const journal = new Journal(db);
      const id = journal.begin({ kind: 'validation', source: 'cli', packageFile: '/x.edgepkg' });
      journal.close(id, 'rejected', { code: 'package.not_tar', message: 'not a tar', next: 'Rebuild.' });
      db.close();
      const before = tree(work);
      for (const args of [['history', 'list'], ['history', 'show', 'last'], ['history', 'show', id], ['service', 'list']]) {
        const r = caisson([...args, '--services', catalog, '--state-dir', stateDir, '--docker-socket', nosock], { env: cleanEnv() });
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
        if (args[0] === 'history') assert.ok(r.stdout.includes(id));
      }
      assert.deepEqual(tree(work), before);
    });
  });

  describe('environment settings for the common options', () => {
    it('CAISSON_SERVICES and CAISSON_STATE_DIR stand in for --services and --state-dir; an option wins', () => {
      const stateDir = join(work, 'state');
      const db = openDatabase(stateDir);
      const journal = new Journal(db);
      const id = journal.begin({ kind: 'validation', source: 'cli', packageFile: '/x.edgepkg' });
      journal.close(id, 'valid');
      db.close();
      const env = cleanEnv({ CAISSON_SERVICES: catalog, CAISSON_STATE_DIR: stateDir, CAISSON_DOCKER_SOCKET: nosock });
      const list = caisson(['service', 'list'], { env });
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /^web +docker/m);
      assert.ok((caisson(['history', 'show', 'last'], { env }).stdout).includes(id));
      const other = caisson(['history', 'list', '--state-dir', join(work, 'other')], { env });
      assert.match(other.stdout, /^no history yet/);
      assert.ok(!(caisson(['history', 'list'], { env: { ...env, CAISSON_STATE_DIR: '' } }).stdout).includes(stateDir), 'an empty setting counts as unset');
    });

    it('--help names each setting, and shows CAISSON_TRUSTED_KEYS as the --trusted-keys default', () => {
      const keys = join(work, 'keys');
      const help = caisson(['package', 'validate', '--help'], { env: cleanEnv({ CAISSON_TRUSTED_KEYS: keys }) });
      const text = help.stdout.replace(/\s+/g, ' ');
      assert.ok(text.includes(`(env CAISSON_TRUSTED_KEYS) (default: "${keys}")`));
      for (const name of ['CAISSON_SERVICES', 'CAISSON_STATE_DIR', 'CAISSON_DOCKER_SOCKET']) assert.ok(text.includes(`(env ${name})`));
    });
  });
});
