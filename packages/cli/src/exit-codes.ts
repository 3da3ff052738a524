/**
 * The exit codes of every `registrar` command, in one table: `--help` prints it and docs/cli.md shows it
 * (test/docs keeps the two equal).
 */
export const EXIT_CODES: readonly (readonly [code: number, meaning: string])[] = [
  [0, 'success: a clean shutdown after SIGTERM/SIGINT; check: every check passed; explain: explained'],
  [1, 'failure: a fatal runtime error; check: a check failed; explain: the container is unknown'],
  [2, 'bad usage or configuration: one line on stderr says what was wrong and how to fix it'],
];

export const exitCodesHelp = (): string =>
  `Exit codes:\n${EXIT_CODES.map(([code, meaning]) => `  ${code}  ${meaning}`).join('\n')}`;
