// Container HEALTHCHECK probe: GET /healthz on the address `--metrics-addr` / REGISTRAR_METRICS_ADDR serves.
// Exit 0 when it answers 200, 1 otherwise (Docker's contract). `node dist/healthcheck.js [host:port] [path]`.
import { formatHostPort } from '@registrar/core/kit';
const address = process.argv[2] ?? process.env.REGISTRAR_METRICS_ADDR ?? '127.0.0.1:9105';
const path = process.argv[3] ?? '/healthz';
const match = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(address);
if (match === null) {
  process.stderr.write(`healthcheck: cannot parse metrics address "${address}"\n`);
  process.exit(1);
}
const listen = match[1] ?? match[2] ?? '';
// A wildcard listener is reachable on loopback.
const host = listen === '' || listen === '0.0.0.0' ? '127.0.0.1' : listen === '::' ? '::1' : listen;
const url = `http://${formatHostPort({ host, port: Number(match[3]) })}${path}`;
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_500) });
  process.stdout.write(`${url} ${res.status}\n`);
  process.exit(res.ok ? 0 : 1);
} catch (error) {
  process.stdout.write(`${url} ${(error as Error).message}\n`);
  process.exit(1);
}
