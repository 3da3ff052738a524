import { ConfigError } from '@registrar/core';
import { quote } from '@registrar/core/kit';
import { parseArgv, parseCli } from './options.js';

/** The commands `registrar help <command>` knows, each printing the help its `--help` prints. */
const COMMANDS: Record<string, (write: (text: string) => void) => Promise<void> | void> = {
  check: (write) => void parseCli(['--help'], write, 'check'),
  explain: async (write) =>
    parseArgv((await import('./explain.js')).buildExplainProgram(), ['--help'], write),
  lb: async (write) => parseArgv((await import('./lb.js')).buildLbProgram(), ['--help'], write),
  render: async (write) => parseArgv((await import('./render.js')).buildRenderProgram(), ['--help'], write),
  version: (write) =>
    write('Usage: registrar version | registrar --version\n\nPrint the version of registrar and exit 0.\n'),
  help: (write) =>
    write(
      "Usage: registrar help [command]\n\nPrint the help of a command (check, explain, lb, render, version), or without one the\nbridge's own: registrar --help. Every command also takes --help and -h.\n",
    ),
};

/**
 * `registrar help [command]`. Help goes to stdout and exits 0, through the same CommanderError path as
 * `--help`; an unknown command is bad usage (exit 2).
 */
export async function printHelp(args: readonly string[], write: (text: string) => void): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined) {
    parseCli(['--help'], write);
    return 0;
  }
  const show = COMMANDS[command];
  if (show === undefined || rest.length > 0) {
    const what = show === undefined ? `unknown command ${quote(command, 40)}` : 'one command at a time';
    throw new ConfigError(
      `registrar help: ${what}; the commands are ${Object.keys(COMMANDS).join(', ')} (registrar --help shows the bridge's options)`,
    );
  }
  await show(write);
  return 0;
}
