// Real Apache Curator 5 (Debian's jars) as a consumer: test/interop/java/CuratorProbe.java, compiled with javac
// at test time and driven one command per line.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

const JARS = '/usr/share/java';
const SOURCES = fileURLToPath(new URL('./java/', import.meta.url));
const SPRING_SOURCE = join(SOURCES, 'org/springframework/cloud/zookeeper/discovery/ZookeeperInstance.java');

/**
 * Debian's jars and the packages that install them. Debian's libcurator-discovery-java does not depend on
 * libcurator-recipes-java, which its ServiceCache needs (CuratorCache).
 */
const CURATOR_JARS: Record<string, string> = {
  'curator-x-discovery.jar': 'libcurator-discovery-java',
  'curator-recipes.jar': 'libcurator-recipes-java',
  'curator-framework.jar': 'libcurator-framework-java',
  'curator-client.jar': 'libcurator-client-java',
};
const APT = `apt-get install -y ${[...new Set(Object.values(CURATOR_JARS))].join(' ')}`;

/**
 * The Curator jars plus what they need; further dependencies (guava, netty, zookeeper-jute) come from the
 * Class-Path of Debian's manifests. slf4j-simple sends Curator's log to stderr (the probe's log file).
 */
const CLASSPATH = [
  ...Object.keys(CURATOR_JARS),
  'zookeeper.jar',
  'jackson-databind.jar',
  'jackson-core.jar',
  'jackson-annotations.jar',
  'slf4j-api.jar',
  'slf4j-simple.jar',
].map((jar) => join(JARS, jar));

/** Fail (not skip) with what to install when Curator or javac is missing. */
export async function checkCuratorTools(): Promise<void> {
  const missing = Object.keys(CURATOR_JARS).filter((jar) => !existsSync(join(JARS, jar)));
  if (missing.length > 0) {
    throw new Error(
      `Apache Curator 5 is not installed (${missing.map((jar) => join(JARS, jar)).join(', ')} missing): ${APT}`,
    );
  }
  try {
    await run(process.env.JAVAC_BIN ?? 'javac', ['-version']);
  } catch {
    throw new Error('javac is not installed: apt-get install -y default-jdk-headless');
  }
}

/**
 * Compile the probe into `<dir>/probe` and the Spring payload stand-in into `<dir>/spring`. Returns the two
 * runtime class paths: a generic Curator client (no Spring class anywhere) and one with Spring's class.
 */
export async function compileProbe(dir: string): Promise<{ generic: string; spring: string }> {
  const javac = process.env.JAVAC_BIN ?? 'javac';
  const probe = join(dir, 'probe');
  const spring = join(dir, 'spring');
  mkdirSync(probe);
  mkdirSync(spring);
  await Promise.all([
    run(javac, ['-nowarn', '-d', probe, '-cp', CLASSPATH.join(':'), join(SOURCES, 'CuratorProbe.java')]),
    run(javac, ['-nowarn', '-d', spring, SPRING_SOURCE]),
  ]);
  const generic = [probe, ...CLASSPATH].join(':');
  return { generic, spring: [spring, generic].join(':') };
}

/** One instance as Curator's `ServiceDiscovery`/`ServiceCache` returned it. */
export interface CuratorInstance {
  id: string;
  name: string;
  address: string;
  port: number | null;
  sslPort: number | null;
  serviceType: string;
  registrationTimeUTC: number;
  enabled: boolean;
  /** Java class of the deserialized payload, null for a null payload. */
  payloadClass: string | null;
  payload: unknown;
  /** What Curator's own JsonInstanceSerializer writes for this instance. */
  serialized: string;
}

export type ProbeAnswer =
  { ok: true; instances?: CuratorInstance[] } | { ok: false; error: string; message: string };

/** The payload type a consumer is built with: `map` (generic Curator) or `spring` (`ZookeeperInstance`). */
export type ReaderType = 'map' | 'spring';

export interface CuratorProbe {
  readonly child: ChildProcess;
  readonly logFile: string;
  query(type: ReaderType, base: string, name: string): Promise<ProbeAnswer>;
  /** A ServiceCache's instances (the cache is started, and waited for, on the first call). */
  cache(type: ReaderType, base: string, name: string): Promise<ProbeAnswer>;
  register(type: ReaderType, base: string, name: string, id: string, port: number): Promise<ProbeAnswer>;
  /** End of input: the probe closes its caches and session and exits; SIGKILL (by pid) if it does not. */
  close(): Promise<void>;
}

export async function startProbe(options: {
  classpath: string;
  connectString: string;
  dir: string;
  name: string;
}): Promise<CuratorProbe> {
  const logFile = join(options.dir, `${options.name}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(
    process.env.JAVA_BIN ?? 'java',
    [
      '-Xmx128m',
      '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
      '-cp',
      options.classpath,
      'CuratorProbe',
      options.connectString,
    ],
    { cwd: options.dir, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  child.stderr.pipe(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const waiting: { resolve: (a: ProbeAnswer) => void; reject: (e: Error) => void }[] = [];
  let buffer = '';
  let dead: Error | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      const w = waiting.shift();
      try {
        w?.resolve(JSON.parse(line) as ProbeAnswer);
      } catch {
        w?.reject(new Error(`${options.name} answered something that is not JSON: ${line}`));
      }
    }
  });
  void exited.then(() => {
    dead = new Error(`${options.name} exited (${child.exitCode ?? child.signalCode}); see ${logFile}`);
    for (const w of waiting.splice(0)) w.reject(dead);
  });

  const next = () =>
    new Promise<ProbeAnswer>((resolve, reject) => {
      if (dead) reject(dead);
      else waiting.push({ resolve, reject });
    });
  const send = (...words: (string | number)[]) => {
    const answer = next();
    child.stdin.write(`${words.join(' ')}\n`);
    return answer;
  };

  // The first line says Curator is connected; Curator would wait for ZooKeeper forever, so bound it.
  let timer: NodeJS.Timeout | undefined;
  try {
    const ready = await Promise.race([
      next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${options.name}: not connected after 60 s`)), 60_000);
      }),
    ]);
    if (!ready.ok) throw new Error(`${options.name} did not start`);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw new Error(`${(error as Error).message}; see ${logFile}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
  return {
    child,
    logFile,
    query: (type, base, name) => send('query', type, base, name),
    cache: (type, base, name) => send('cache', type, base, name),
    register: (type, base, name, id, port) => send('register', type, base, name, id, port),
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
