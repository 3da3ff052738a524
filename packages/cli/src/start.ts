import { CommanderError } from 'commander';
import { ConfigError } from '@registrar/core';
import { oneLine } from '@registrar/core/kit';
import { run } from './run.js';

/** Exit codes: 0 clean shutdown, 2 bad usage or configuration, 1 fatal runtime error. */
run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof CommanderError) process.exit(error.exitCode);
    if (error instanceof ConfigError) {
      // One line whatever the message echoes (exit 2 promises "one clear line").
      process.stderr.write(`registrar: ${oneLine(error.message, 600)}\n`);
      process.exit(2);
    }
    process.stderr.write(
      `registrar: fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
