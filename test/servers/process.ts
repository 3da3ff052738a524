import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '@registrar/core/testing';

/** A server process started for a test; its output goes to a log file kept for diagnosis. */
export interface ServerProcess {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly logFile: string;
  /**
   * SIGSTOP / SIGCONT: the process keeps its sockets open but answers nothing. `pause` resolves once the kernel
   * shows every thread stopped: a thread still in a system call stops only when it returns, and on a loaded
   * machine it could answer one more request after `kill` returned.
   */
  pause(): Promise<void>;
  resume(): void;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Whether every thread of `pid` is stopped (state T in /proc/<pid>/task/<tid>/stat). */
function allThreadsStopped(pid: number): boolean {
  const tasks = readdirSync(`/proc/${pid}/task`);
  return tasks.every((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    // "tid (comm) S …": the command may hold spaces and parentheses, the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `registrar-${prefix}-`));
}

export function startProcess(
  command: string,
  args: string[],
  options: { dir: string; name: string; env?: NodeJS.ProcessEnv },
): ServerProcess {
  const logFile = join(options.dir, `${options.name}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(command, args, {
    cwd: options.dir,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    dir: options.dir,
    logFile,
    async pause() {
      child.kill('SIGSTOP');
      const { pid } = child;
      if (pid !== undefined)
        await until(`${options.name} (pid ${pid}) stopped`, () => allThreadsStopped(pid), 5_000);
    },
    resume: () => child.kill('SIGCONT'),
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill(signal);
        await exited;
      }
    },
  };
}

export function removeDir(dir: string) {
  rmSync(dir, { recursive: true, force: true });
}

/** A single test server on a fixed port, whose data outlives a stop. */
export interface RestartableServer {
  process: ServerProcess;
  /** SIGKILL, keeping the data dir. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stop and start again on the same port with the same data. */
  restart(): Promise<void>;
  /** SIGSTOP: sockets stay open but nothing answers, so clients see neither data nor a disconnect. */
  pause(): Promise<void>;
  resume(): void;
  /** SIGKILL and remove the data dir. */
  close(): Promise<void>;
}

/** The stop/start/restart/close life of a server that `launch` starts (and waits for) in `dir`. */
export async function restartable(
  launch: () => Promise<ServerProcess>,
  dir: string,
): Promise<RestartableServer> {
  const server: RestartableServer = {
    process: await launch(),
    async stop() {
      await server.process.kill('SIGKILL');
    },
    async start() {
      server.process = await launch();
    },
    async restart() {
      await server.stop();
      await server.start();
    },
    pause() {
      return server.process.pause();
    },
    resume() {
      server.process.resume();
    },
    async close() {
      await server.process.kill('SIGKILL');
      removeDir(dir);
    },
  };
  return server;
}
