import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import { GiveUp, tripwire, until } from '@registrar/core/testing';

/** The built CLI, run exactly as users run it. */
export const CLI = fileURLToPath(new URL('../../packages/cli/bin/registrar.js', import.meta.url));

/** The version the CLI must report: its package manifest's. */
export const CLI_VERSION = (
  JSON.parse(readFileSync(new URL('../../packages/cli/package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A `registrar` child process whose JSON log lines are collected for assertions. */
export interface BridgeProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  readonly stdout: string[];
  /** Everything written to stderr that was not a JSON log line. */
  readonly stderr: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(what: string, predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** How many of the last stderr lines a bridge that died is reported with. */
const LAST_LINES = 8;

export interface SpawnOptions {
  /**
   * Default true: the bridge exiting without being signalled by the test (a crash, a fatal error) makes every
   * pending and later `until` of the test fail at once with its exit code and last stderr lines.
   * `runCli` turns it off: there the exit is the point.
   */
  readonly exitIsFatal?: boolean;
}

export function spawnBridge(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  options: SpawnOptions = {},
): BridgeProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, REGISTRAR_LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const stdout: string[] = [];
  const stderr: string[] = [];
  const lastLines: string[] = [];
  const died = tripwire();
  if (options.exitIsFatal !== false) {
    try {
      // The test that started it owns its death; the next test's waits do not.
      onTestFinished(() => died.clear());
    } catch {
      // Started outside a test (beforeAll): a death concerns every test until it is killed.
    }
    child.once('close', (code, signal) => {
      // `killed`: the test sent it a signal, so the exit was asked for.
      if (child.killed) return;
      const how = code !== null ? `exit code ${code}` : `signal ${signal}`;
      const tail = lastLines.length > 0 ? lastLines.join('\n') : '(nothing on stderr)';
      died.trip(
        `registrar (pid ${child.pid}) exited on its own with ${how}; its last stderr lines:\n${tail}`,
      );
    });
  }
  const lines = (sink: (line: string) => void) => {
    let buffer = '';
    return (chunk: Buffer) => {
      buffer += chunk.toString();
      const parts = buffer.split('\n');
      buffer = parts.pop() ?? '';
      for (const part of parts) if (part.trim() !== '') sink(part);
    };
  };
  child.stdout.on(
    'data',
    lines((line) => stdout.push(line)),
  );
  child.stderr.on(
    'data',
    lines((line) => {
      lastLines.push(line);
      if (lastLines.length > LAST_LINES) lastLines.shift();
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        stderr.push(line);
      }
    }),
  );
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    // 'close', not 'exit': only then has everything the process wrote to stdout and stderr been read.
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    logs,
    stdout,
    stderr,
    exited,
    async waitForLog(what, predicate, timeoutMs = 20_000) {
      let found: LogLine | undefined;
      await until(
        `bridge log: ${what}`,
        () => {
          found = logs.find(predicate);
          if (found !== undefined) return true;
          if (child.exitCode !== null || child.signalCode !== null)
            throw new GiveUp(`bridge exited: ${stderr.join('\n')}`);
          return false;
        },
        timeoutMs,
      );
      return found!;
    },
    async kill(signal = 'SIGKILL') {
      died.clear();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        await exited;
      }
    },
  };
}

/** Run the CLI to completion (for usage errors). */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const bridge = spawnBridge(args, env, { exitIsFatal: false });
  const { code } = await bridge.exited;
  return { code, stderr: bridge.stderr, logs: bridge.logs, stdout: bridge.stdout };
}
