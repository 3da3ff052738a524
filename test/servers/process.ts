import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A server process started for a test; its output goes to a log file kept for diagnosis. */
export interface ServerProcess {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly logFile: string;
  /** SIGSTOP / SIGCONT: the process keeps its sockets open but answers nothing. */
  pause(): void;
  resume(): void;
  kill(signal?: NodeJS.Signals): Promise<void>;
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
    pause: () => child.kill('SIGSTOP'),
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
  pause(): void;
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
      server.process.pause();
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
