import { describe, expect, it } from 'vitest';
import type { Service } from '@registrar/core';
import { buildDefinition, substituteServiceVars } from './definition.js';
import type { ConsulCheck } from './definition.js';

const settings = { nodeId: 'n1', bridgeId: 'registrar:n1', deregisterAfter: 60, healthTtl: 3600 };
const CONTAINER_ID = 'c0ffee'.padEnd(64, '0');

function service(overrides: Partial<Service> = {}): Service {
  return {
    id: 'n1:web-1:80',
    name: 'web',
    address: '10.0.0.5',
    port: 8080,
    protocol: 'tcp',
    containerPort: 80,
    tags: ['blue'],
    meta: { version: '1.2' },
    node: 'n1',
    container: { id: CONTAINER_ID, name: 'web-1' },
    health: 'passing',
    healthOutput: '',
    checks: {},
    ...overrides,
  };
}

const build = (overrides: Partial<Service>) => buildDefinition(service(overrides), settings);
/** The SERVICE_CHECK_* checks only (the first two are the adapter's own). */
const extraChecks = (overrides: Partial<Service>): ConsulCheck[] =>
  build(overrides).registration.Checks.slice(2);

describe('$SERVICE_IP / $SERVICE_PORT', () => {
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
    [
      '10.0.0.5',
      '$SERVICE_NAME $SERVICE_IPV6 $SERVICE_PORTS ${SERVICE_ID}',
      '$SERVICE_NAME $SERVICE_IPV6 $SERVICE_PORTS ${SERVICE_ID}',
    ],
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
