// lb-sync: keeps HAProxy's server slots equal to Consul's passing instances of each service.
// A blocking query per service (`/v1/health/service/<name>?passing&index=…`) wakes on every change; the result is
// written into the backend of the same name through HAProxy's runtime API (`set server … addr/state`): an instance
// keeps its slot while it lives, free slots go to maintenance. Every round re-applies the whole state, so a
// restarted HAProxy converges too. Dependency-free: runs on any Node >= 18.
//   CONSUL_HTTP_ADDR  http://consul:8500     HAPROXY_RUNTIME  haproxy:9999
//   SERVICES          web,api               SLOTS            10        HEALTH_ADDR  127.0.0.1:8406
import { createServer } from 'node:http';
import { connect } from 'node:net';

const consul = (process.env.CONSUL_HTTP_ADDR ?? 'http://consul:8500').replace(/\/$/, '');
const [haproxyHost, haproxyPort] = (process.env.HAPROXY_RUNTIME ?? 'haproxy:9999').split(':');
const services = (process.env.SERVICES ?? 'web').split(',').filter(Boolean);
const slots = Number(process.env.SLOTS ?? '10');
const [healthHost, healthPort] = (process.env.HEALTH_ADDR ?? '127.0.0.1:8406').split(':');
const log = (msg, fields = {}) =>
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), msg, ...fields })}\n`);

/** Send `;`-joined commands in one connection; HAProxy answers and closes. */
function runtime(commands) {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(haproxyPort), haproxyHost);
    let out = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('haproxy runtime API timed out')));
    socket.on('connect', () => socket.end(`${commands.join(';')}\n`));
    socket.on('data', (d) => (out += d));
    socket.on('error', reject);
    socket.on('close', () => resolve(out));
  });
}

const state = new Map(
  services.map((s) => [s, { index: '0', slots: new Array(slots).fill(undefined), ok: false }]),
);

async function round(service) {
  const st = state.get(service);
  const res = await fetch(
    `${consul}/v1/health/service/${encodeURIComponent(service)}?passing&wait=30s&index=${st.index}`,
    { signal: AbortSignal.timeout(40_000) },
  );
  if (!res.ok) throw new Error(`consul answered ${res.status}`);
  const index = res.headers.get('x-consul-index') ?? '0';
  // An index that goes backwards (agent restarted) restarts the blocking sequence.
  st.index = BigInt(index) < BigInt(st.index) ? '0' : index;
  const entries = await res.json();
  const wanted = new Set(
    entries
      .map((e) => `${e.Service.Address || e.Node.Address}:${e.Service.Port}`)
      .filter((a) => !a.startsWith(':')),
  );
  // Keep live instances in their slots, free the rest, then place newcomers in free slots.
  st.slots = st.slots.map((a) => (a !== undefined && wanted.has(a) ? a : undefined));
  for (const a of wanted) {
    if (st.slots.includes(a)) continue;
    const free = st.slots.indexOf(undefined);
    if (free === -1) {
      log('no free server slot; raise SLOTS and the server-template count', { service, address: a });
      break;
    }
    st.slots[free] = a;
  }
  const commands = st.slots.flatMap((a, i) => {
    const server = `${service}/s${i + 1}`;
    if (a === undefined) return [`set server ${server} state maint`];
    const cut = a.lastIndexOf(':');
    return [
      `set server ${server} addr ${a.slice(0, cut)} port ${a.slice(cut + 1)}`,
      `set server ${server} state ready`,
    ];
  });
  const answer = await runtime(commands);
  const errors = answer.split('\n').filter((l) => /no such|error|invalid|require/i.test(l));
  if (errors.length > 0) throw new Error(`haproxy: ${errors.join('; ')}`);
  if (!st.ok || st.last !== [...wanted].sort().join(',')) {
    log('pool updated', { service, servers: [...wanted].sort() });
  }
  st.last = [...wanted].sort().join(',');
  st.ok = true;
}

async function loop(service) {
  for (let failures = 0; ;) {
    try {
      await round(service);
      failures = 0;
    } catch (error) {
      const st = state.get(service);
      st.ok = false;
      st.index = '0';
      if (failures++ === 0) log('sync failed; retrying', { service, err: String(error?.message ?? error) });
      await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** failures, 5000)));
    }
  }
}

createServer((req, res) => {
  const ok = [...state.values()].every((s) => s.ok);
  res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
  res.end(
    `${JSON.stringify(Object.fromEntries([...state].map(([k, v]) => [k, { ok: v.ok, pool: v.slots.filter(Boolean) }])))}\n`,
  );
}).listen(Number(healthPort), healthHost);

for (const service of services) void loop(service);
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
log('lb-sync started', { consul, haproxy: `${haproxyHost}:${haproxyPort}`, services });
