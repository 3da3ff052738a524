import { spawn } from 'node:child_process';

/** How a `--check` or `--reload` command ended. */
export interface CommandResult {
  readonly ok: boolean;
  /** `exit 1`, `signal SIGKILL`, `timed out after 30 s`, `could not start: ...`. */
  readonly how: string;
  /** The end of what it wrote to stdout and stderr, for the log. */
  readonly output: string;
}

/** Output kept per command: its last characters are the ones that say what went wrong. */
const KEEP = 2000;

/**
 * Run `command` with `/bin/sh -c` (as consul-template and confd do), with `env` added to ours. It gets
 * `timeoutMs`; then it and its children (its own process group) are killed.
 */
export function runCommand(
  command: string,
  options: { readonly timeoutMs: number; readonly env?: Readonly<Record<string, string>> },
): Promise<CommandResult> {
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    const child = spawn('/bin/sh', ['-c', command], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, ...options.env },
    });
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-KEEP);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ ok: false, how: `could not start: ${error.message}`, output });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const how = timedOut
        ? `timed out after ${options.timeoutMs / 1000} s`
        : code !== null
          ? `exit ${code}`
          : `signal ${signal}`;
      resolve({ ok: code === 0 && !timedOut, how, output: output.trim() });
    });
  });
}
