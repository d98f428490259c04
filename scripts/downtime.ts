// Measure how long a service does not answer while a command runs (the demo's update):
//   npx tsx scripts/downtime.ts URL -- COMMAND ARGS...
// Polls URL (a fresh connection every 50 ms) from just before COMMAND starts until it exits,
// passes COMMAND's output through, then prints one line on stderr:
//   downtime: 0.42 s (the longest time URL did not answer)
// and exits with COMMAND's exit code. DOWNTIME_OUT=FILE also writes the seconds to FILE.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';

const POLL_MS = 50;
const REQUEST_TIMEOUT_MS = 1000;

function answers(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

async function main(): Promise<void> {
  const [url, dashes, command, ...args] = process.argv.slice(2);
  if (!url || dashes !== '--' || !command) {
    process.stderr.write('usage: downtime.ts URL -- COMMAND ARGS...\n');
    process.exit(64);
  }
  let running = true;
  let longestMs = 0;
  let downSince: number | undefined; // when the last good answer was seen before a failure
  let lastUp = Date.now();
  const poller = (async () => {
    while (running) {
      const asked = Date.now();
      const ok = await answers(url);
      const now = Date.now();
      if (ok) {
        if (downSince !== undefined) longestMs = Math.max(longestMs, asked - downSince);
        downSince = undefined;
        lastUp = now;
      } else if (downSince === undefined) {
        downSince = lastUp;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  })();
  const child = spawn(command, args, { stdio: 'inherit' });
  const code = await new Promise<number>((resolve) => child.on('close', (c, signal) => resolve(c ?? (signal ? 128 : 1))));
  running = false;
  await poller;
  const stillDown = downSince !== undefined;
  if (stillDown) longestMs = Math.max(longestMs, Date.now() - downSince!);
  process.stderr.write(
    `downtime: ${(longestMs / 1000).toFixed(2)} s (the longest time ${url} did not answer${stillDown ? '; it still does not answer' : ''})\n`,
  );
  if (process.env.DOWNTIME_OUT) writeFileSync(process.env.DOWNTIME_OUT, `${(longestMs / 1000).toFixed(2)}\n`);
  process.exit(code);
}

await main();
