import { describe, expect, it } from 'vitest';
import { codecFor, curatorCodec, registratorCodec, ZOOKEEPER_PAYLOADS } from './layout.js';
import { service } from './testing/helpers.js';

const s = service({ node: 'n1' });
const TIME = 1764031617123;
const HEAD = '{"name":"web","id":"n1:web1:80","address":"10.0.0.5","port":32768,"sslPort":null,';
const TAIL = `"registrationTimeUTC":${TIME},"serviceType":"DYNAMIC","uriSpec":null`;
const METADATA =
  '"env":"test","version":"1.2","tags":"blue,v1","protocol":"tcp","registrar.node":"n1",' +
  '"registrar.container.id":"0123456789abcdef0123456789abcdef","registrar.container.name":"web1"';

describe('curator codec', () => {
  it('payload=spring: Spring Cloud Zookeeper’s ZookeeperInstance with id, name and metadata', () => {
    expect(curatorCodec('spring').encode(s, 'n1', TIME)).toBe(
      HEAD +
        '"payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance",' +
        `"id":"n1:web1:80","name":"web","metadata":{${METADATA}}},` +
        `${TAIL}}`,
    );
  });

  it('payload=plain: the metadata as the LinkedHashMap a Curator Map application writes', () => {
    expect(curatorCodec('plain').encode(s, 'n1', TIME)).toBe(
      `${HEAD}"payload":{"@class":"java.util.LinkedHashMap",${METADATA}},${TAIL}}`,
    );
  });

  it('payload=none: a null payload, the owner beside Curator’s fields', () => {
    expect(curatorCodec('none').encode(s, 'n1', TIME)).toBe(
      `${HEAD}"payload":null,${TAIL},` +
        '"registrar.node":"n1","registrar.container.id":"0123456789abcdef0123456789abcdef",' +
        '"registrar.container.name":"web1"}',
    );
  });

  it('defaults to payload=none', () => {
    expect(curatorCodec().encode(s, 'n1', TIME)).toBe(curatorCodec('none').encode(s, 'n1', TIME));
    expect(codecFor('curator').encode(s, 'n1', TIME)).toBe(curatorCodec('none').encode(s, 'n1', TIME));
  });

  it('service metadata cannot displace the type id or the owner', () => {
    const hostile = { ...s, meta: { '@class': 'java.lang.Runtime', 'registrar.node': 'other' } };
    for (const mode of ['plain', 'spring'] as const) {
      const doc = JSON.parse(curatorCodec(mode).encode(hostile, 'n1', TIME));
      const payload = doc.payload as Record<string, unknown>;
      expect(Object.keys(payload)[0]).toBe('@class');
      expect(payload['@class']).not.toBe('java.lang.Runtime');
      expect(curatorCodec(mode).decode(JSON.stringify(doc))?.node).toBe('n1');
    }
  });

  it('decodes the owner, id, name and time of every payload mode with any codec (a restart may switch modes)', () => {
    for (const written of ZOOKEEPER_PAYLOADS) {
      const data = curatorCodec(written).encode(s, 'n1', TIME);
      for (const reader of ZOOKEEPER_PAYLOADS) {
        expect(curatorCodec(reader).decode(data), `${written} read by ${reader}`).toEqual({
          id: 'n1:web1:80',
          name: 'web',
          node: 'n1',
          registrationTimeUTC: TIME,
        });
      }
    }
  });

  it('does not claim nodes without an owner: what Curator applications write, foreign or broken data', () => {
    const codec = curatorCodec('none');
    const curator = (payload: string) =>
      `{"name":"web","id":"x","address":"127.0.0.1","port":1,"sslPort":null,"payload":${payload},` +
      '"registrationTimeUTC":1,"serviceType":"DYNAMIC","uriSpec":null}';
    expect(codec.decode(curator('null'))).toBeUndefined();
    expect(codec.decode(curator('{"@class":"java.util.LinkedHashMap","origin":"curator"}'))).toBeUndefined();
    expect(
      codec.decode(
        curator(
          '{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","id":"x","name":"web","metadata":{}}',
        ),
      ),
    ).toBeUndefined();
    expect(codec.decode(curator('{"registrar.node":7}'))).toBeUndefined();
    for (const data of ['', 'null', '[]', '"x"', '{"id":"x","registrar.node":"n1"}', '{not json']) {
      expect(codec.decode(data), data).toBeUndefined();
    }
  });

  it('records the engine beside the owner in every payload mode and decodes it with any codec', () => {
    const where = {
      none: (doc: Record<string, unknown>) => doc,
      spring: (doc: Record<string, unknown>) =>
        (doc.payload as { metadata: Record<string, unknown> }).metadata,
      plain: (doc: Record<string, unknown>) => doc.payload as Record<string, unknown>,
    };
    for (const written of ZOOKEEPER_PAYLOADS) {
      const data = curatorCodec(written).encode(s, 'n1', TIME, 'ENG:A');
      const owner = where[written](JSON.parse(data) as Record<string, unknown>);
      // Right after the owner, where Curator consumers already find registrar's fields.
      const keys = Object.keys(owner);
      expect(keys[keys.indexOf('registrar.node') + 1]).toBe('registrar.engine');
      expect(owner['registrar.engine']).toBe('ENG:A');
      for (const reader of ZOOKEEPER_PAYLOADS) {
        expect(curatorCodec(reader).decode(data)).toEqual({
          id: 'n1:web1:80',
          name: 'web',
          node: 'n1',
          engine: 'ENG:A',
          registrationTimeUTC: TIME,
        });
      }
    }
  });

  it('a service’s own registrar.engine metadata never passes for the writer’s engine', () => {
    const hostile = { ...s, meta: { 'registrar.engine': 'forged' } };
    for (const mode of ZOOKEEPER_PAYLOADS) {
      const codec = curatorCodec(mode);
      expect(codec.decode(codec.encode(hostile, 'n1', TIME))?.engine, mode).toBeUndefined();
      expect(codec.decode(codec.encode(hostile, 'n1', TIME, 'ENG:A'))?.engine, mode).toBe('ENG:A');
    }
  });

  it('canonical ignores only the registration time, so a mode change is drift', () => {
    for (const mode of ZOOKEEPER_PAYLOADS) {
      const codec = curatorCodec(mode);
      expect(codec.canonical(codec.encode(s, 'n1', 1))).toBe(codec.canonical(codec.encode(s, 'n1', 2)));
    }
    const canonicals = ZOOKEEPER_PAYLOADS.map((mode) => {
      const codec = curatorCodec(mode);
      return codec.canonical(codec.encode(s, 'n1', TIME));
    });
    expect(new Set(canonicals).size).toBe(3);
  });

  it('rejects an unknown payload mode from untyped callers', () => {
    expect(() => curatorCodec('map' as never)).toThrow('unknown zookeeper payload "map"');
  });

  it('the registrator layout records the engine as `Engine` after `Node`', () => {
    const data = registratorCodec.encode(s, 'n1', TIME, 'ENG:A');
    expect(data.endsWith('"ID":"n1:web1:80","Node":"n1","Engine":"ENG:A"}')).toBe(true);
    expect(registratorCodec.decode(data)).toEqual({
      id: 'n1:web1:80',
      name: 'web',
      node: 'n1',
      engine: 'ENG:A',
    });
    expect(registratorCodec.decode(registratorCodec.encode(s, 'n1', TIME))?.engine).toBeUndefined();
  });

  it('the registrator layout has no payload', () => {
    expect(codecFor('registrator')).toBe(registratorCodec);
  });
  it('mayOwn: curator nodes are named by the id, so the name says whose they can be; registrator names cannot', () => {
    const curator = codecFor('curator');
    expect(curator.mayOwn('n1:web-1:80', 'n1')).toBe(true);
    expect(curator.mayOwn('n11:web-1:80', 'n1')).toBe(false);
    expect(curator.mayOwn('n1', 'n1')).toBe(false);
    expect(codecFor('registrator').mayOwn('10.0.0.5:8080', 'n1')).toBe(true);
  });
});

describe('dual-stack services', () => {
  it("curator: `addresses` beside Curator's fields, in every payload mode; single-stack nodes unchanged", () => {
    const dual = service({
      node: 'n1',
      dualStack: { ipv4: { address: '10.0.0.5', port: 32768 }, ipv6: { address: 'fd00::5', port: 32769 } },
    });
    for (const mode of ZOOKEEPER_PAYLOADS) {
      const doc = JSON.parse(curatorCodec(mode).encode(dual, 'n1', TIME)) as Record<string, unknown>;
      expect(doc).toMatchObject({
        address: '10.0.0.5',
        port: 32768,
        addresses: { ipv4: { address: '10.0.0.5', port: 32768 }, ipv6: { address: 'fd00::5', port: 32769 } },
      });
      expect(curatorCodec(mode).decode(JSON.stringify(doc))).toMatchObject({ id: dual.id, node: 'n1' });
      expect(curatorCodec(mode).encode(s, 'n1', TIME)).not.toContain('addresses');
    }
  });
});
