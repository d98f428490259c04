#!/usr/bin/env node
// caisson: the operator's command line. Every command drives the same pipeline the agent uses.
import { Command } from 'commander';
import { UPDATER_VERSION } from '../version.js';

const program = new Command('caisson')
  .description('Offline updater for predefined Docker services')
  .version(UPDATER_VERSION)
  .enablePositionalOptions()
  .showHelpAfterError()
  .addHelpText('after', '\nExit codes: 0 committed/valid, 2 rejected (service untouched), 3 rolled back, 4 rollback failed, 1 unexpected. See docs/cli.md.');

// The top-level commands, in the order help lists them. Each one's module is loaded only
// when it runs: most of a CLI start is loading modules (on a small device, seconds), and
// `caisson history list` needs neither the engine client nor the package builder. Help, a
// typo, or no command at all loads every one (help lists them, a typo gets a suggestion).
const COMMANDS: Record<string, () => Promise<void>> = {
  service: async () => void program.addCommand((await import('./info-commands.js')).serviceCommand()),
  package: async () => void program.addCommand((await import('./package-commands.js')).packageCommand()),
  history: async () => void program.addCommand((await import('./info-commands.js')).historyCommand()),
  device: async () => void program.addCommand((await import('./device-command.js')).deviceCommand()),
  web: async () => void program.addCommand((await import('./web-command.js')).webCommand()),
  recover: async () => (await import('./recover-command.js')).addRecoverCommand(program),
  key: async () => (await import('./key-command.js')).addKeyCommand(program),
  agent: async () => (await import('./agent-command.js')).addAgentCommand(program),
};

const named = process.argv[2];
const chosen = named !== undefined && Object.hasOwn(COMMANDS, named) ? [named] : Object.keys(COMMANDS);
for (const name of chosen) await COMMANDS[name]!();

await program.parseAsync(process.argv);
