import { describe, expect, it } from 'vitest';
import type { Service } from '@registrar/core';
import { service as testService } from '@registrar/core/testing';
import { buildDefinition, defKeyOf, substituteServiceVars } from './definition.js';
import type { ConsulCheck } from './definition.js';

const settings = { nodeId: 'n1', bridgeId: 'registrar:n1', deregisterAfter: 60, healthTtl: 3600 };
const CONTAINER_ID = 'c0ffee'.padEnd(64, '0');

/** Core's test service as these tests' expected definitions spell it out. */
const service = (overrides: Partial<Service> = {}): Service =>
  testService({
    tags: ['blue'],
    meta: { version: '1.2' },
    container: { id: CONTAINER_ID, name: 'web-1' },
    ...overrides,
  });

const build = (overrides: Partial<Service>) => buildDefinition(service(overrides), settings);
/** The SERVICE_CHECK_* checks only (the first two are the adapter's own). */
const extraChecks = (overrides: Partial<Service>): ConsulCheck[] =>
  build(overrides).registration.Checks.slice(2);

describe('owner meta', () => {
  it('records the writing engine as registrar-engine beside registrar-node, when known', () => {
    const withEngine = buildDefinition(service(), { ...settings, engineId: 'ENG:A' });
    expect(withEngine.registration.Meta).toMatchObject({
      'registrar-node': 'n1',
      'registrar-engine': 'ENG:A',
    });
    const keys = Object.keys(withEngine.registration.Meta);
    expect(keys.indexOf('registrar-engine')).toBe(keys.indexOf('registrar-node') + 1);
    // Part of the identity: a service registered without it (an older version) is registered again once.
    expect(withEngine.defKey).not.toBe(build({}).defKey);
    expect(build({}).registration.Meta).not.toHaveProperty('registrar-engine');
  });

  it('a service’s own registrar-engine metadata is dropped, never passing for the writer’s', () => {
    const built = build({ meta: { 'registrar-engine': 'forged' } });
    expect(built.registration.Meta).not.toHaveProperty('registrar-engine');
  });
});

describe('SERVICE_ENABLE_TAG_OVERRIDE', () => {
  it.each([
    ['true', true],
    ['TRUE', true],
    ['1', true],
    ['yes', true],
    [' on ', true],
    ['false', false],
    ['0', false],
    ['no', false],
    ['off', false],
  ])('%j → EnableTagOverride %s, and not sent as Meta', (value, expected) => {
    const built = build({ meta: { version: '1.2', enable_tag_override: value } });
    expect(built.warnings).toEqual([]);
    expect(built.registration.EnableTagOverride).toBe(expected);
    expect(built.registration.Meta).not.toHaveProperty('enable_tag_override');
    expect(built.registration.Meta.version).toBe('1.2');
  });

  it('is left out when absent or empty', () => {
    const metas: Record<string, string>[] = [{}, { enable_tag_override: '' }, { enable_tag_override: '  ' }];
    for (const meta of metas) {
      const built = build({ meta });
      expect(built.warnings).toEqual([]);
      expect(built.registration).not.toHaveProperty('EnableTagOverride');
    }
  });

  it.each(['maybe', 'treu', '2', 'enabled'])(
    'a bad value %j gives one warning naming the label and the fix, and leaves out only that field',
    (value) => {
      const built = build({ meta: { enable_tag_override: value, weights_passing: '3' } });
      expect(built.warnings).toHaveLength(1);
      expect(built.warnings[0]!.key).toBe('SERVICE_ENABLE_TAG_OVERRIDE');
      expect(built.warnings[0]!.message).toContain(JSON.stringify(value));
      expect(built.warnings[0]!.message).toContain('use true or false');
      expect(built.registration).not.toHaveProperty('EnableTagOverride');
      expect(built.registration.Meta).not.toHaveProperty('enable_tag_override');
      expect(built.registration.Weights).toEqual({ Passing: 3, Warning: 1 });
    },
  );
});

describe('SERVICE_WEIGHTS_PASSING / SERVICE_WEIGHTS_WARNING', () => {
  it.each([
    [{ weights_passing: '5' }, { Passing: 5, Warning: 1 }],
    [{ weights_warning: '0' }, { Passing: 1, Warning: 0 }],
    [{ weights_warning: '3' }, { Passing: 1, Warning: 3 }],
    [
      { weights_passing: '10', weights_warning: '2' },
      { Passing: 10, Warning: 2 },
    ],
    [
      { weights_passing: ' 65535 ', weights_warning: '65535' },
      { Passing: 65535, Warning: 65535 },
    ],
    [{ weights_passing: '007' }, { Passing: 7, Warning: 1 }],
    [
      { weights_passing: '5', weights_warning: '' },
      { Passing: 5, Warning: 1 },
    ],
  ])('%j → Weights %j (the one not given is Consul’s default 1)', (meta, weights) => {
    const built = build({ meta: { version: '1.2', ...meta } });
    expect(built.warnings).toEqual([]);
    expect(built.registration.Weights).toEqual(weights);
    expect(Object.keys(built.registration.Meta).filter((k) => k.startsWith('weights'))).toEqual([]);
    expect(built.registration.Meta.version).toBe('1.2');
  });

  it('sends no Weights when neither is given', () => {
    expect(build({}).registration).not.toHaveProperty('Weights');
    expect(build({ meta: { weights_passing: '' } }).registration).not.toHaveProperty('Weights');
  });

  it.each([
    ['weights_passing', '0', 'SERVICE_WEIGHTS_PASSING', 'from 1 to 65535'],
    ['weights_passing', '-1', 'SERVICE_WEIGHTS_PASSING', 'from 1 to 65535'],
    ['weights_passing', '1.5', 'SERVICE_WEIGHTS_PASSING', 'from 1 to 65535'],
    ['weights_passing', '65536', 'SERVICE_WEIGHTS_PASSING', 'from 1 to 65535'],
    ['weights_passing', 'ten', 'SERVICE_WEIGHTS_PASSING', 'from 1 to 65535'],
    ['weights_passing', '+5', 'SERVICE_WEIGHTS_PASSING', 'from 1 to 65535'],
    ['weights_passing', '1e3', 'SERVICE_WEIGHTS_PASSING', 'from 1 to 65535'],
    ['weights_warning', '-1', 'SERVICE_WEIGHTS_WARNING', 'from 0 to 65535'],
    ['weights_warning', '70000', 'SERVICE_WEIGHTS_WARNING', 'from 0 to 65535'],
    ['weights_warning', 'low', 'SERVICE_WEIGHTS_WARNING', 'from 0 to 65535'],
  ])(
    '%s=%j gives one warning naming %s and the range, and leaves out Weights only',
    (key, value, label, range) => {
      const other: Record<string, string> =
        key === 'weights_passing' ? { weights_warning: '2' } : { weights_passing: '4' };
      const built = build({ meta: { [key]: value, ...other, enable_tag_override: 'true' } });
      expect(built.warnings).toHaveLength(1);
      expect(built.warnings[0]!.key).toBe(label);
      expect(built.warnings[0]!.message).toContain(JSON.stringify(value));
      expect(built.warnings[0]!.message).toContain(`whole number ${range}`);
      expect(built.warnings[0]!.message).toContain('Weights were left out');
      expect(built.registration).not.toHaveProperty('Weights');
      expect(built.registration.EnableTagOverride).toBe(true);
      expect(Object.keys(built.registration.Meta).filter((k) => k.startsWith('weights'))).toEqual([]);
    },
  );

  it('two bad weights give one warning each', () => {
    const built = build({ meta: { weights_passing: '0', weights_warning: 'x' } });
    expect(built.warnings.map((w) => w.key)).toEqual(['SERVICE_WEIGHTS_PASSING', 'SERVICE_WEIGHTS_WARNING']);
    expect(built.registration).not.toHaveProperty('Weights');
  });
});

describe('defKey: what a resync compares with the agent', () => {
  const agentView = {
    id: 'a',
    name: 'web',
    address: '10.0.0.5',
    port: 80,
    tags: ['blue'],
    meta: { k: 'v' },
  };

  it('the agent’s defaults (Weights 1/1, EnableTagOverride false) equal a registration without them', () => {
    const bare = defKeyOf(agentView);
    expect(defKeyOf({ ...agentView, weights: { Passing: 1, Warning: 1 }, enableTagOverride: false })).toBe(
      bare,
    );
    expect(defKeyOf({ ...agentView, weights: null })).toBe(bare);
    expect(defKeyOf({ ...agentView, weights: { Passing: 2, Warning: 1 } })).not.toBe(bare);
    expect(defKeyOf({ ...agentView, weights: { Passing: 1, Warning: 0 } })).not.toBe(bare);
    expect(defKeyOf({ ...agentView, enableTagOverride: true })).not.toBe(bare);
  });

  it('with EnableTagOverride the tags are the catalog’s: a tag edit is not drift', () => {
    const open = { ...agentView, enableTagOverride: true };
    expect(defKeyOf({ ...open, tags: ['edited'] })).toBe(defKeyOf(open));
    expect(defKeyOf({ ...agentView, tags: ['edited'] })).not.toBe(defKeyOf(agentView));
  });

  it('buildDefinition’s key changes with the weights and the override', () => {
    const base = build({}).defKey;
    expect(build({ meta: { version: '1.2', weights_passing: '1' } }).defKey).toBe(base);
    expect(build({ meta: { version: '1.2', weights_passing: '2' } }).defKey).not.toBe(base);
    expect(build({ meta: { version: '1.2', enable_tag_override: 'false' } }).defKey).toBe(base);
    expect(build({ meta: { version: '1.2', enable_tag_override: 'true' } }).defKey).not.toBe(base);
  });
});

describe('$SERVICE_IP / $SERVICE_PORT', () => {
  const otherNames = '$SERVICE_NAME $SERVICE_IPV6 $SERVICE_PORTS ${SERVICE_ID}';
  it.each([
    ['10.0.0.5', 'echo $SERVICE_IP $SERVICE_PORT', 'echo 10.0.0.5 8080'],
    ['10.0.0.5', '$SERVICE_IP:$SERVICE_PORT', '10.0.0.5:8080'],
    ['10.0.0.5', '${SERVICE_IP}:${SERVICE_PORT}/x', '10.0.0.5:8080/x'],
    ['fd00::5', '$SERVICE_IP:$SERVICE_PORT', '[fd00::5]:8080'],
    ['fd00::5', '${SERVICE_IP}:${SERVICE_PORT}', '[fd00::5]:8080'],
    ['fd00::5', '$SERVICE_IP:9000', '[fd00::5]:9000'],
    ['fd00::5', 'curl http://$SERVICE_IP:$SERVICE_PORT/health', 'curl http://[fd00::5]:8080/health'],
    ['fd00::5', 'ping6 -c1 $SERVICE_IP', 'ping6 -c1 fd00::5'],
    ['fd00::5', '[$SERVICE_IP]:$SERVICE_PORT', '[fd00::5]:8080'],
    ['fd00::5', 'ip=$SERVICE_IP&port=$SERVICE_PORT', 'ip=fd00::5&port=8080'],
    // Other names (and ones that only start like ours) are left as written.
    ['10.0.0.5', otherNames, otherNames],
    ['10.0.0.5', '$SERVICE_IP$SERVICE_PORT', '10.0.0.58080'],
    ['10.0.0.5', '$$SERVICE_PORT $', '$8080 $'],
    ['10.0.0.5', 'no variables', 'no variables'],
  ])('%s: %j → %j', (address, text, expected) => {
    expect(substituteServiceVars(text, address, 8080)).toBe(expected);
  });

  it('applies to every check that runs or targets something, IPv6 bracketed in host:port', () => {
    const checks = extraChecks({
      address: 'fd00::5',
      checks: {
        http: '/health?port=$SERVICE_PORT',
        tcp: '$SERVICE_IP:$SERVICE_PORT',
        grpc: '${SERVICE_IP}:9090/health.v1',
        script: 'nc -z $SERVICE_IP $SERVICE_PORT',
        cmd: 'wget -qO- http://$SERVICE_IP:$SERVICE_PORT/ $SERVICE_NAME',
        docker: '/bin/check.sh $SERVICE_IP $SERVICE_PORT',
      },
    });
    expect(checks.map((c) => c.HTTP ?? c.TCP ?? c.GRPC ?? c.Args)).toEqual([
      'http://[fd00::5]:8080/health?port=8080',
      '[fd00::5]:8080',
      '[fd00::5]:9090/health.v1',
      ['/bin/sh', '-c', 'nc -z fd00::5 8080'],
      ['/bin/sh', '-c', 'wget -qO- http://[fd00::5]:8080/ $SERVICE_NAME'],
      ['/bin/check.sh', 'fd00::5', '8080'],
    ]);
  });

  it('a substituted TCP target that is still not host:port is one warning quoting what was written', () => {
    const built = build({ address: 'fd00::5', checks: { tcp: '$SERVICE_IP' } });
    expect(built.warnings).toHaveLength(1);
    expect(built.warnings[0]).toMatchObject({ key: 'SERVICE_CHECK_TCP' });
    expect(built.warnings[0]!.message).toContain('"$SERVICE_IP"');
    expect(built.registration.Checks).toHaveLength(2);
  });
});

describe('SERVICE_CHECK_DOCKER', () => {
  it('is a Consul Docker check in the container: Args split on whitespace, the default interval', () => {
    const built = build({ checks: { docker: ' /bin/check.sh  arg\tmore ' } });
    expect(built.warnings).toEqual([]);
    expect(built.registration.Checks.slice(2)).toEqual([
      {
        Name: 'web docker check',
        Notes: 'From SERVICE_CHECK_DOCKER on container web-1',
        DockerContainerID: CONTAINER_ID,
        Args: ['/bin/check.sh', 'arg', 'more'],
        Interval: '10s',
      },
    ]);
  });

  it('takes the shared interval, timeout, initial status and deregister-after', () => {
    const [check] = extraChecks({
      checks: {
        docker: '/bin/check.sh',
        interval: '30s',
        timeout: '5s',
        initial_status: 'passing',
        deregister_after: '5m',
      },
    });
    expect(check).toMatchObject({
      Interval: '30s',
      Timeout: '5s',
      Status: 'passing',
      DeregisterCriticalServiceAfter: '5m',
    });
  });

  it('runs through SERVICE_CHECK_SHELL when given (Consul ignores Shell next to Args)', () => {
    const checks = extraChecks({
      checks: { docker: 'test -f /ready && echo ok', cmd: 'echo $SERVICE_PORT', shell: '/bin/bash' },
    });
    expect(checks.map((c) => [c.Shell, c.Args])).toEqual([
      ['/bin/bash', ['/bin/bash', '-c', 'echo 8080']],
      ['/bin/bash', ['/bin/bash', '-c', 'test -f /ready && echo ok']],
    ]);
  });

  it.each([
    [{ docker: '/bin/check.sh', shell: 'bash -x' }, 'the docker check was'],
    [{ cmd: 'true', shell: '/bin/sh;rm' }, 'the cmd check was'],
    [{ docker: '/bin/check.sh', cmd: 'true', shell: 'a b' }, 'the cmd and docker checks were'],
  ])(
    'a bad SERVICE_CHECK_SHELL in %j is one warning and skips only the checks it applies to',
    (opts, skipped) => {
      const built = build({ checks: { ...opts, http: '/health' } });
      expect(built.warnings).toHaveLength(1);
      expect(built.warnings[0]!.key).toBe('SERVICE_CHECK_SHELL');
      expect(built.warnings[0]!.message).toContain(JSON.stringify(opts.shell));
      expect(built.warnings[0]!.message).toContain('such as /bin/bash');
      expect(built.warnings[0]!.message).toContain(`${skipped} skipped`);
      expect(built.registration.Checks.slice(2).map((c) => c.HTTP)).toEqual(['http://10.0.0.5:8080/health']);
    },
  );

  it('a SERVICE_CHECK_SHELL without a cmd or docker check is not looked at', () => {
    expect(build({ checks: { shell: 'not a shell', http: '/' } }).warnings).toEqual([]);
  });

  it('a bad interval is one warning (the interval’s) and skips the docker check with the other interval checks', () => {
    const built = build({ checks: { docker: '/bin/check.sh', interval: '10', ttl: '30s' } });
    expect(built.warnings.map((w) => w.key)).toEqual(['SERVICE_CHECK_INTERVAL']);
    expect(built.registration.Checks.slice(2).map((c) => c.TTL ?? c.Args)).toEqual(['30s']);
  });

  it('an empty value adds nothing and says nothing', () => {
    const built = build({ checks: { docker: '   ' } });
    expect(built.warnings).toEqual([]);
    expect(built.registration.Checks).toHaveLength(2);
  });
});
