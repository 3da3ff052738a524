import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, GiveUp, until } from '@registrar/core/testing';
import { status } from './haproxy.js';
import { removeDir, startProcess, tempDir, type ServerProcess } from './process.js';

/**
 * A real nginx (Debian's package) on loopback, in a directory of its own: its own prefix, pid file, error log
 * and temp dirs, in the foreground (`daemon off`), stopped by its pid. The test writes the `http {}` body.
 */
export interface NginxServer {
  /** Its prefix directory: the config, the pid file, the error log and files the test puts there. */
  readonly dir: string;
  /** The port the test's `http` body was given to listen on (127.0.0.1). */
  readonly port: number;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** `nginx -t` of this config, as a `--check` command. */
  readonly check: string;
  /** `nginx -s reload` of this instance, as a `--reload` command. */
  readonly reload: string;
  /** Times the master started a new configuration (its error log's "reconfiguring"). */
  reloads(): number;
  stop(): Promise<void>;
}

export interface NginxOptions {
  /** The `http {}` block's body; `port` is the one it must listen on (`listen 127.0.0.1:<port>`). */
  readonly http: (port: number, dir: string) => string;
  /** Files written into its directory before it starts (an included upstream list...). */
  readonly files?: Readonly<Record<string, string>>;
}

const NGINX = 'nginx';

export async function startNginx(options: NginxOptions): Promise<NginxServer> {
  const dir = tempDir('nginx');
  const temp = join(dir, 'tmp');
  mkdirSync(temp, { mode: 0o777 });
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  const errorLog = join(dir, 'error.log');
  for (const [name, content] of Object.entries(options.files ?? {})) writeFileSync(join(dir, name), content);
  writeFileSync(
    conf,
    `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${errorLog} notice;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${temp};
  proxy_temp_path ${temp};
  fastcgi_temp_path ${temp};
  uwsgi_temp_path ${temp};
  scgi_temp_path ${temp};
${options.http(port, dir)}
}
`,
  );
  // -e: nginx opens its compiled-in error log (/var/log/nginx) before it reads any config, unless told.
  const base = `${NGINX} -p ${dir} -c ${conf} -e ${errorLog}`;
  const server: ServerProcess = startProcess(NGINX, ['-p', dir, '-c', conf, '-e', errorLog], {
    dir,
    name: 'nginx',
  });
  try {
    await until('nginx accepting on 127.0.0.1', async () => {
      if (server.child.exitCode !== null)
        throw new GiveUp(`nginx exited: ${readFileSync(errorLog, 'utf8').slice(-600)}`);
      return (await status(`http://127.0.0.1:${port}/`)) !== undefined;
    });
  } catch (error) {
    await server.kill('SIGKILL');
    throw error;
  }
  return {
    dir,
    port,
    url: `http://127.0.0.1:${port}`,
    check: `${base} -t -q`,
    reload: `${base} -s reload`,
    reloads: () => readFileSync(errorLog, 'utf8').split('(SIGHUP) received').length - 1,
    async stop() {
      // SIGQUIT: graceful, the workers go with the master; SIGKILL if that takes more than 5 s.
      const killer = setTimeout(() => void server.kill('SIGKILL'), 5_000);
      await server.kill('SIGQUIT');
      clearTimeout(killer);
      removeDir(dir);
    },
  };
}
