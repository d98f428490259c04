// The demo's device as a newcomer meets it (real engine): scripts/demo-setup.sh prepares it,
// the demo's updates print one result line each and say no fact twice, the service's
// outage during an update is the switch's own (its image stops on SIGTERM), every command of
// the README's "Using it" block exits as documented, and scripts/demo-clean.sh removes all
// the demo made. It uses the demo's own names (container caisson-demo-web, port 18080,
// /var/lib/caisson-demo): a demo left on this machine is replaced, then removed.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, REPO_ROOT, runCli, type CliResult } from '../support/cli.js';
import { httpGet } from '../support/http.js';

const DEMO = '/var/lib/caisson-demo';
const VERSION_URL = 'http://127.0.0.1:18080/version';
const API_VERSION_URL = 'http://127.0.0.1:18081/version';
const RESULT_PREFIX = /^(valid|committed|rolled back|rejected|already installed|ROLLBACK FAILED):/;

function bash(script: string): { code: number | null; out: string } {
  const r = spawnSync('bash', [join(REPO_ROOT, 'scripts', script)], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 600_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function dockerLines(...args: string[]): string[] {
  const r = spawnSync('docker', args, { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

/** The README's "Using it" block: its export line as settings, then each command and its documented exit code. */
function readmeUsingIt(): { env: Record<string, string>; commands: Array<{ line: string; args: string[]; exit: number }> } {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Using it'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  const env: Record<string, string> = {};
  const commands: Array<{ line: string; args: string[]; exit: number }> = [];
  for (const line of block.split('\n').filter((l) => l.trim())) {
    if (line.startsWith('export ')) {
      for (const pair of line.slice('export '.length).trim().split(/\s+/)) {
        const [k, v] = pair.split('=');
        env[k!] = v!;
      }
      continue;
    }
    const m = /^caisson (.+?)\s+# exit (\d+)/.exec(line);
    expect(m, `README "Using it" line without a documented exit code: ${line}`).to.not.equal(null);
    commands.push({ line, args: m![1]!.trim().split(/\s+/), exit: Number(m![2]) });
  }
  return { env, commands };
}

/** Each fact once: one stdout line, no stderr line repeating the result, its error or another stderr line. */
function expectSaidOnce(r: CliResult, resultStart: RegExp): string {
  const out = r.stdout.trimEnd().split('\n');
  expect(out, `stdout: ${r.stdout}`).to.have.length(1);
  expect(out[0]).to.match(resultStart);
  const err = r.stderr.trimEnd().split('\n').filter(Boolean);
  for (const line of err) {
    expect(line, 'a result line on stderr').to.not.match(RESULT_PREFIX); // step lines are indented
    expect(line, 'the error the result line gives, said on stderr too').to.not.match(/^(warn: |error: )?\s*[a-z]+\.[a-z_]+: /);
    expect(line, 'the plain health countdown repeats the health log line').to.not.match(/^health: up to/);
  }
  expect(new Set(err).size, `a stderr line said twice:\n${r.stderr}`).to.equal(err.length);
  expect(out[0], 'sentences joined with ";"').to.not.match(/\.;|; the service/);
  return out[0]!;
}

/** Run a CLI command while polling the demo service: the longest time it did not answer, in ms. */
async function withDowntime(run: () => Promise<CliResult>): Promise<{ r: CliResult; downtimeMs: number }> {
  let running = true;
  let longest = 0;
  let lastUp = Date.now();
  let down = false;
  const poller = (async () => {
    while (running) {
      const asked = Date.now();
      const ok = (await httpGet(VERSION_URL, 1000)).status === 200;
      if (ok) {
        if (down) longest = Math.max(longest, asked - lastUp);
        down = false;
        lastUp = Date.now();
      } else down = true;
      await new Promise((res) => setTimeout(res, 50));
    }
  })();
  const r = await run();
  running = false;
  await poller;
  return { r, downtimeMs: down ? Math.max(longest, Date.now() - lastUp) : longest };
}

describe('the demo as a newcomer meets it (real engine)', function () {
  this.timeout(300_000);
  const { env: readmeEnv, commands } = readmeUsingIt();
  let env: Record<string, string>;
  const pkg = (version: string) => `${DEMO}/packages/web-${version}.edgepkg`;

  before(function () {
    this.timeout(900_000);
    ensureBuilt();
    const setup = bash('demo-setup.sh');
    expect(setup.code, setup.out).to.equal(0);
    env = { ...readmeEnv };
  });

  after(function () {
    this.timeout(120_000);
    bash('demo-clean.sh');
  });

  it('the README gives one export line with the demo\'s catalog, state and keys', () => {
    expect(readmeEnv).to.deep.equal({
      CAISSON_SERVICES: `${DEMO}/services.toml`,
      CAISSON_STATE_DIR: `${DEMO}/state`,
      CAISSON_TRUSTED_KEYS: `${DEMO}/trusted-keys`,
    });
    expect(commands.length).to.be.at.least(5);
  });

  it('package validate prints one result line and says nothing else twice', async () => {
    const r = await runCli(['package', 'validate', pkg('1.1.0')], { env });
    expect(r.code, r.stderr).to.equal(0);
    expectSaidOnce(r, /^valid: .*web-1\.1\.0\.edgepkg updates web to 1\.1\.0 /);
    expect(r.stderr).to.not.match(/^\s*valid:/m);
  });

  it('package load commits 1.1.0: one result line, and the outage is the switch\'s own, not a stop timeout', async () => {
    const { r, downtimeMs } = await withDowntime(() => runCli(['package', 'load', '--yes', pkg('1.1.0')], { env }));
    expect(r.code, r.stderr).to.equal(0);
    expectSaidOnce(r, /^committed: web caisson-demo\/web:1\.0\.0 → 1\.1\.0 /);
    expect(r.stderr.match(/health check \(http\): up to 20 s, stable for 4 s/g)).to.have.length(1);
    // a PID 1 that ignored SIGTERM made this 10 s and more; the demo itself holds it under 2 s
    expect(downtimeMs, `downtime ${downtimeMs} ms`).to.be.below(5_000);
    expect((await httpGet(VERSION_URL)).body.trim()).to.equal('1.1.0');
  });

  it('package load of the broken 1.2.0 rolls back: one result line in whole sentences, its error said once', async () => {
    const r = await runCli(['package', 'load', '--yes', pkg('1.2.0')], { env });
    expect(r.code, r.stderr).to.equal(3);
    const line = expectSaidOnce(r, /^rolled back: web runs caisson-demo\/web:1\.1\.0 again \(health\.(unstable|timeout)\): /);
    expect(line).to.match(/\. Next: .*\. \[u-[0-9A-Za-z-]+\]$/);
    expect(r.stderr).to.contain('rolling back web to caisson-demo/web:1.1.0');
    expect((await httpGet(VERSION_URL)).body.trim()).to.equal('1.1.0');
  });

  it('package load of the stack shop-2.0.0 commits web and api together: one result line naming both', async () => {
    const r = await runCli(['package', 'load', '--yes', `${DEMO}/packages/shop-2.0.0.edgepkg`], { env });
    expect(r.code, r.stderr).to.equal(0);
    expectSaidOnce(r, /^committed: stack shop 2\.0\.0: web 1\.1\.0 → 2\.0\.0, api caisson-demo\/api:1\.0\.0 → 2\.0\.0 \[u-/);
    expect((await httpGet(VERSION_URL)).body.trim()).to.equal('2.0.0');
    expect((await httpGet(API_VERSION_URL)).body.trim()).to.equal('2.0.0');
    const shown = await runCli(['history', 'show', 'last'], { env });
    expect(shown.stdout).to.match(/services \(in switch order\):\n {2}web {2}1\.1\.0 → 2\.0\.0 {2}committed\n {2}api {2}caisson-demo\/api:1\.0\.0 → 2\.0\.0 {2}committed/);
  });

  it('every command of the README\'s "Using it" block exits as documented', async () => {
    for (const c of commands) {
      const r = await runCli(c.args, { env });
      expect(r.code, `${c.line}\n${r.stdout}${r.stderr}`).to.equal(c.exit);
      expect(r.stdout.trim(), c.line).to.not.equal('');
    }
  });

  it('the demo\'s clean-up removes every container, image, volume and file it made', function () {
    const clean = bash('demo-clean.sh');
    expect(clean.code, clean.out).to.equal(0);
    expect(dockerLines('ps', '-a', '--format', '{{.Names}}', '--filter', 'name=caisson-demo')).to.deep.equal([]);
    expect(dockerLines('images', '-q', '--filter', 'label=caisson.demo=1')).to.deep.equal([]);
    expect(dockerLines('volume', 'ls', '-q', '--filter', 'name=caisson-demo')).to.deep.equal([]);
    expect(existsSync(DEMO)).to.equal(false);
  });
});
