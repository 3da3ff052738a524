import { ConfigError, silentLogger } from '@registrar/core';
import { service } from '@registrar/core/testing';
import { describe, expect, it } from 'vitest';
import { agentOf } from './client.js';
import { createConsulRegistry } from './registry.js';

describe('Consul options in the shared vocabulary', () => {
  it.each([
    [{}, 'http://127.0.0.1:8500/'],
    [{ hosts: ['10.0.0.1'] }, 'http://10.0.0.1:8500/'],
    [{ hosts: ['10.0.0.1:8600'] }, 'http://10.0.0.1:8600/'],
    [{ hosts: ['agent.local'], tls: {} }, 'https://agent.local:8501/'],
    [{ hosts: ['fd00::1'] }, 'http://[fd00::1]:8500/'],
    [{ hosts: ['[fd00::1]:9'] }, 'http://[fd00::1]:9/'],
    [{ hosts: ['https://agent:8501'] }, 'https://agent:8501/'],
    // The deprecated name still works for one release.
    [{ url: 'http://10.0.0.2:8500' }, 'http://10.0.0.2:8500/'],
  ])('%j → %s', (options, url) => {
    expect(agentOf('consul registry', options).toString()).toBe(url);
  });

  it.each([
    [{ hosts: [] }, 'hosts'],
    [{ hosts: ['a:8500', 'b:8500'] }, 'hosts'],
    [{ hosts: ['a:8500'], url: 'http://a:8500' }, 'url'],
  ])('%j is a ConfigError naming %s', (options, field) => {
    const error = (() => {
      try {
        agentOf('consul registry', options);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe(field);
  });

  it('refuses timeoutMs together with its deprecated name requestTimeoutMs', () => {
    expect(() => createConsulRegistry({ nodeId: 'n', timeoutMs: 1, requestTimeoutMs: 2 })).toThrow(
      'consul registry: `requestTimeoutMs` is the deprecated name of `timeoutMs`; give only `timeoutMs`',
    );
  });

  it('check(): a record Consul would have to rewrite is refused; the labels of a container are adapted instead', () => {
    const registry = createConsulRegistry({ nodeId: 'n1', logger: silentLogger });
    const record = service({ meta: { 'app.version': '1' } });
    const { container: _container, ...neutral } = record;
    expect(registry.check!(neutral)).toEqual({
      field: 'meta.app.version',
      message: expect.stringContaining('metadata key "app.version" is not valid in Consul') as string,
    });
    expect(registry.check!(record)).toBeUndefined();
    expect(registry.check!({ ...neutral, address: 'localhost' })).toMatchObject({ field: 'address' });
    void registry.close();
  });
});
