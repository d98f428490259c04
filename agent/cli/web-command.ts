// `caisson web passwd`: set the status page's password. It is read from the terminal
// (asked twice, not echoed) or, for scripts, as the first line of standard input, and
// stored only as a scrypt hash (password.ts). Sessions of a running agent stay valid
// until they expire; the next login checks the new password.
import { Command } from 'commander';
import { loadAgentConfig } from '../config/agent.js';
import { DEFAULT_AGENT_CONFIG_PATH } from '../config/defaults.js';
import { CaissonError } from '../errors.js';
import { emit, runCommand } from './common.js';
import { passwordFileFor } from '../web/index.js';
import { MAX_PASSWORD_BYTES, checkNewPassword, hashPassword, writePasswordFile } from '../web/password.js';

export function webCommand(): Command {
  const web = new Command('web').description('the local status page');
  web
    .command('passwd')
    .description('set the password for changes on the status page (read from the terminal or the first line of stdin)')
    .option('--config <file>', 'agent.toml (its folder holds web-password)', DEFAULT_AGENT_CONFIG_PATH)
    .option('--json', 'print one JSON object instead of text', false)
    .action((opts: { config: string; json: boolean }) =>
      runCommand(opts, async () => {
        const config = loadAgentConfig(opts.config);
        let password: string;
        if (process.stdin.isTTY) {
          password = await askHidden('New password for the status page: ');
          checkNewPassword(password);
          if ((await askHidden('Again: ')) !== password) throw new CaissonError('usage.invalid', 'the two passwords differ');
        } else {
          password = await firstLine(process.stdin);
          checkNewPassword(password);
        }
        const file = passwordFileFor(config.configDir);
        writePasswordFile(file, hashPassword(password));
        emit(opts, { password_file: file }, `password set (scrypt hash in ${file})`);
        return 0;
      }),
    );
  return web;
}

/** The first line of a stream, read up to a cap (a password, not a file). */
async function firstLine(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    text += chunk.toString();
    const nl = text.search(/\r?\n/);
    if (nl >= 0) return text.slice(0, nl);
    if (text.length > MAX_PASSWORD_BYTES * 4) break;
  }
  if (text.length > MAX_PASSWORD_BYTES * 4) throw new CaissonError('usage.invalid', `the password must be at most ${MAX_PASSWORD_BYTES} bytes`);
  return text;
}

function askHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let text = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (d: Buffer) => {
      for (const ch of d.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new CaissonError('update.cancelled', 'cancelled'));
        if (ch === '\u007f' || ch === '\b') text = [...text].slice(0, -1).join('');
        else if (text.length < MAX_PASSWORD_BYTES * 4) text += ch;
      }
    };
    stdin.on('data', onData);
  });
}
