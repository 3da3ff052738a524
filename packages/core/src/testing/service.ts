import type { Service } from '../service.js';

/** What `service()` fills in: a passing TCP web service on `n1`, container `web-1`, port 80 published on 8080. */
const DEFAULTS = {
  name: 'web',
  address: '10.0.0.5',
  port: 8080,
  protocol: 'tcp',
  containerPort: 80,
  tags: [],
  meta: {},
  node: 'n1',
  container: { id: 'c0ffee', name: 'web-1' },
  health: 'passing',
  healthOutput: '',
  checks: {},
} as const satisfies Omit<Service, 'id'>;

/**
 * A service as core would derive it, for tests. Unless `id` is given it is derived the way core derives it
 * (`<node>:<container name>:<container port>[:udp]`), so overriding `node` or `container` moves the id too.
 */
export function service(overrides: Partial<Service> = {}): Service {
  const { id, ...fields } = { ...DEFAULTS, ...overrides };
  const udp = fields.protocol === 'udp' ? ':udp' : '';
  return {
    id: id ?? `${fields.node}:${fields.container?.name ?? fields.name}:${fields.containerPort}${udp}`,
    ...fields,
  };
}
