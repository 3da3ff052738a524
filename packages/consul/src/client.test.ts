/** Every failure of the agent API reaches the reconciler as one of core's kind-tagged errors. */
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { ConfigError, RegistryConnectionError, RegistryRejectedError } from '@registrar/core';
import { describe, expect, it } from 'vitest';
import { ConsulClient } from './client.js';
import { createConsulRegistry } from './index.js';

type Answer = { status: number; text: string };
const answering = (answer: Answer) => (): Promise<{ status: number; text(): Promise<string> }> =>
  Promise.resolve({ status: answer.status, text: () => Promise.resolve(answer.text) });

const client = (fetch: ReturnType<typeof answering>, token?: string) =>
  new ConsulClient({
    baseUrl: new URL('http://127.0.0.1:1'),
    timeoutMs: 2000,
    fetch,
    ...(token !== undefined && { token }),
  });

/** A port nothing listens on: a closed listener's. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('ConsulClient over plain http', () => {
  it('goes through node:http, not fetch: undici is never loaded, and one connection is kept alive', () => {
    const module = fileURLToPath(new URL('../dist/client.js', import.meta.url));
    const script = `
      const { ConsulClient } = await import(${JSON.stringify(module)});
      const http = process.getBuiltinModule('node:http');
      let connections = 0;
      const server = http.createServer((req, res) => res.end('{}'));
      server.on('connection', () => (connections += 1));
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
      const client = new ConsulClient({
        baseUrl: new URL('http://127.0.0.1:' + server.address().port),
        timeoutMs: 2000,
      });
      for (let i = 0; i < 5; i++) await client.request('GET', '/v1/agent/services');
      await client.close();
      server.close();
      const undici = process.moduleLoadList.filter((m) => m.includes('undici'));
      console.log(JSON.stringify({ undici, connections }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({ undici: [], connections: 1 });
  });
});

describe('ConsulClient error mapping', () => {
  it('a refused connection (fetch’s TypeError "fetch failed") is a connection error', async () => {
    const real = new ConsulClient({
      baseUrl: new URL(`http://127.0.0.1:${await closedPort()}`),
      timeoutMs: 2000,
    });
    const error = await real.request('GET', '/v1/agent/services').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RegistryConnectionError);
    expect((error as Error).message).toContain('ECONNREFUSED');
  });

  it('a request fetch refuses to build is rejected, without echoing the token', async () => {
    const real = new ConsulClient({
      baseUrl: new URL('http://127.0.0.1:1'),
      timeoutMs: 2000,
      token: 'sec\nXyZ9',
    });
    const error = await real.request('GET', '/v1/agent/services').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RegistryRejectedError);
    expect((error as Error).message).toMatch(/^cannot send GET \/v1\/agent\/services to Consul/);
    expect((error as Error).message).not.toContain('XyZ9');
  });

  it('a body JSON cannot encode is rejected', async () => {
    const error = await client(answering({ status: 200, text: '' }))
      .request('PUT', '/v1/x', { body: { n: 1n } })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RegistryRejectedError);
  });

  it.each([
    [500, RegistryConnectionError],
    [503, RegistryConnectionError],
    [429, RegistryConnectionError],
    [408, RegistryConnectionError],
    [400, RegistryRejectedError],
    [403, RegistryRejectedError],
    [404, RegistryRejectedError],
    [405, RegistryRejectedError],
  ])('HTTP %d → %o', async (status, type) => {
    const error = await client(answering({ status, text: 'no\nmore' }))
      .request('GET', '/v1/agent/services')
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(type);
    expect((error as Error).message).not.toContain('\n');
  });

  it('an answer that is not JSON is a connection error', () => {
    const c = client(answering({ status: 200, text: '' }));
    expect(() => c.parse({ status: 200, text: '<html>' }, 'list services')).toThrow(RegistryConnectionError);
  });
});

describe('createConsulRegistry refusals', () => {
  it('a missing node id or a bad agent URL is a ConfigError', () => {
    expect(() => createConsulRegistry({ nodeId: '' })).toThrow(ConfigError);
    expect(() => createConsulRegistry({ nodeId: 'n', url: 'ftp://x' })).toThrow(
      'Consul agent URL "ftp://x" is not http://host:port or https://host:port',
    );
  });

  it('registering the bridge’s own id is rejected, not retried', async () => {
    const registry = createConsulRegistry({
      nodeId: 'n',
      fetch: answering({ status: 200, text: '{}' }),
    });
    const error = await registry
      .register({
        id: 'registrar:n',
        name: 'x',
        address: '10.0.0.1',
        port: 1,
        protocol: 'tcp',
        containerPort: 1,
        tags: [],
        meta: {},
        node: 'n',
        container: { id: 'c', name: 'c' },
        health: 'passing',
        healthOutput: '',
        checks: {},
      })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RegistryRejectedError);
    await registry.close();
  });

  it('a list answered with something other than JSON is a connection error', async () => {
    const registry = createConsulRegistry({
      nodeId: 'n',
      readOnly: true,
      fetch: answering({ status: 200, text: '<html>proxy</html>' }),
    });
    await expect(registry.list()).rejects.toBeInstanceOf(RegistryConnectionError);
    await registry.close();
  });
});
