import { describe, expect, it } from 'vitest';
import { createCodec, decodeLabel, domainPath, encodeLabel, normalisePrefix } from './layout.js';
import { service } from '@registrar/core/testing';

describe('skydns id labels', () => {
  it.each([
    ['host1:web-1:80', 'host1--web-2d1--80'],
    ['node.example.com:proj_web_1:53:udp', 'node-2eexample-2ecom--proj-5fweb-5f1--53--udp'],
    ['MyHost:x:1', '-4dy-48ost--x--1'],
    ['h:caf\u00e9:1', 'h--caf-c3-a9--1'],
  ])('%s ↔ %s', (id, label) => {
    expect(encodeLabel(id)).toBe(label);
    expect(label).toMatch(/^[a-z0-9-]+$/);
    expect(decodeLabel(label)).toBe(id);
  });

  it('rejects labels it would not have produced', () => {
    expect(decodeLabel('a-61')).toBeUndefined(); // non-canonical `a`
    expect(decodeLabel('a-')).toBeUndefined();
    expect(decodeLabel('a-zz')).toBeUndefined();
    expect(decodeLabel('A')).toBeUndefined();
    expect(decodeLabel('-ff')).toBeUndefined(); // invalid UTF-8
  });

  it('is prefix-safe: node "a" never decodes node "ab" or "a-b" entries as its own', () => {
    for (const other of ['ab:web:80', 'a-b:web:80', 'a.b:web:80']) {
      expect(decodeLabel(encodeLabel(other))!.startsWith('a:')).toBe(false);
    }
  });
});

describe('codecs', () => {
  const base = { prefix: '/services', nodeId: 'n1', domain: 'skydns.local', ttl: 15 };
  // Meta given unsorted: the expected document shows the json layout sorting it.
  const svc = service({ node: 'n1', tags: ['a', 'b'], meta: { zone: 'z1', env: 'prod' } });

  it('json: the writing engine is recorded after the node and read back; records without one are ours too', () => {
    const codec = createCodec({ ...base, layout: 'json', engineId: 'ENG:A' });
    expect(codec.value(svc)).toBe(
      '{"id":"n1:web-1:80","name":"web","address":"10.0.0.5","port":8080,"protocol":"tcp","tags":["a","b"],' +
        '"meta":{"env":"prod","zone":"z1"},"node":"n1","engine":"ENG:A","container":{"id":"c0ffee","name":"web-1"}}',
    );
    expect(codec.parse(codec.key(svc), codec.value(svc))).toEqual({
      id: svc.id,
      name: 'web',
      engine: 'ENG:A',
    });
    // Another engine's record of this node id is still this node id's: parsed, with that engine.
    const other = createCodec({ ...base, layout: 'json', engineId: 'ENG:B' });
    expect(codec.parse(other.key(svc), other.value(svc))).toEqual({
      id: svc.id,
      name: 'web',
      engine: 'ENG:B',
    });
    // An older version's record (no engine): no engine, adopted as before.
    const old = createCodec({ ...base, layout: 'json' });
    expect(codec.parse(old.key(svc), old.value(svc))).toEqual({ id: svc.id, name: 'web' });
  });

  it('hostport and skydns have no room for the engine: their values stay as registrator and CoreDNS read them', () => {
    for (const layout of ['hostport', 'skydns'] as const) {
      const prefix = layout === 'skydns' ? '/skydns' : '/services';
      const plain = createCodec({ ...base, prefix, layout });
      const withEngine = createCodec({ ...base, prefix, layout, engineId: 'ENG:A' });
      expect(withEngine.value(svc)).toBe(plain.value(svc));
      expect(withEngine.parse(withEngine.key(svc), withEngine.value(svc))?.engine).toBeUndefined();
    }
  });

  it('json: fixed key order, sorted metadata', () => {
    const codec = createCodec({ ...base, layout: 'json' });
    expect(codec.key(svc)).toBe('/services/web/n1:web-1:80');
    expect(codec.value(svc)).toBe(
      '{"id":"n1:web-1:80","name":"web","address":"10.0.0.5","port":8080,"protocol":"tcp","tags":["a","b"],' +
        '"meta":{"env":"prod","zone":"z1"},"node":"n1","container":{"id":"c0ffee","name":"web-1"}}',
    );
    expect(codec.parse(codec.key(svc), codec.value(svc))).toEqual({ id: svc.id, name: 'web' });
    // Another node's record, or something that is not our JSON, is not ours.
    const other = service({ node: 'n2' });
    expect(codec.parse(codec.key(other), codec.value(other))).toBeUndefined();
    expect(codec.parse('/services/web/n1:x:1', 'not json')).toBeUndefined();
    expect(codec.parse('/services2/web/n1:x:1', codec.value(svc))).toBeUndefined();
  });

  it('hostport: registrator layout, IPv6 bracketed, ownership from the id', () => {
    const codec = createCodec({ ...base, layout: 'hostport' });
    expect(codec.value(svc)).toBe('10.0.0.5:8080');
    expect(codec.value({ ...svc, address: 'fd00::5' })).toBe('[fd00::5]:8080');
    expect(codec.parse('/services/web/n1:web-1:80', '10.0.0.5:8080')).toEqual({
      id: 'n1:web-1:80',
      name: 'web',
    });
    expect(codec.parse('/services/a/b/n1:web-1:80', 'x')).toEqual({ id: 'n1:web-1:80', name: 'a/b' });
    expect(codec.parse('/services/web/n11:web-1:80', 'x')).toBeUndefined();
    expect(codec.parse('/services/web/n1', 'x')).toBeUndefined();
  });

  it('skydns: reversed domain, dotted names nest, value readable by CoreDNS', () => {
    const codec = createCodec({ ...base, prefix: '/skydns', layout: 'skydns' });
    expect(domainPath('skydns.local')).toBe('/local/skydns');
    expect(codec.key(svc)).toBe('/skydns/local/skydns/web/n1--web-2d1--80');
    expect(codec.value(svc)).toBe('{"host":"10.0.0.5","port":8080,"ttl":15}');
    const dotted = { ...svc, name: 'API.v1' };
    expect(codec.key(dotted)).toBe('/skydns/local/skydns/v1/api/n1--web-2d1--80');
    expect(codec.parse(codec.key(dotted), '')).toEqual({ id: svc.id, name: 'api.v1' });
    expect(codec.check({ ...svc, name: 'a..b' })).toBeDefined();
    expect(codec.parse('/skydns/local/skydns/web/n11--web--80', '')).toBeUndefined();
  });

  it("owns: whose a key can be, from the key alone (a shared prefix is listed without other nodes' values)", () => {
    const json = createCodec({ ...base, layout: 'json' });
    expect(json.owns(json.key(svc))).toBe(true);
    expect(json.owns('/services/web/n11:web-1:80')).toBe(false);
    expect(json.owns('/services/web/n1')).toBe(false);
    // A record naming us under a key of another node's id is not ours: we never write such a key.
    expect(json.parse('/services/web/n2:web-1:80', json.value(svc))).toBeUndefined();
    const hostport = createCodec({ ...base, layout: 'hostport' });
    expect(hostport.owns('/services/a/b/n1:web-1:80')).toBe(true);
    expect(hostport.owns('/services/web/n2:web-1:80')).toBe(false);
    const skydns = createCodec({ ...base, prefix: '/skydns', layout: 'skydns' });
    expect(skydns.owns(skydns.key(svc))).toBe(true);
    expect(skydns.owns('/skydns/local/skydns/web/n11--web--80')).toBe(false);
  });

  it('normalises prefixes', () => {
    expect(normalisePrefix('services/')).toBe('/services');
    expect(normalisePrefix('/a/b//')).toBe('/a/b');
    expect(normalisePrefix('/')).toBe('');
  });
});

describe('dual-stack services', () => {
  const dual = service({
    node: 'n1',
    dualStack: { ipv4: { address: '10.0.0.5', port: 8080 }, ipv6: { address: 'fd00::5', port: 8080 } },
  });

  it('json: `addresses` ends the record, with the endpoint per family; other records are unchanged', () => {
    const codec = createCodec({ layout: 'json', prefix: '/services', nodeId: 'n1', domain: 'x', ttl: 15 });
    const record = JSON.parse(codec.value(dual)) as Record<string, unknown>;
    expect(Object.keys(record).at(-1)).toBe('addresses');
    expect(record).toMatchObject({
      address: '10.0.0.5',
      port: 8080,
      addresses: { ipv4: { address: '10.0.0.5', port: 8080 }, ipv6: { address: 'fd00::5', port: 8080 } },
    });
    const { dualStack: _, ...single } = dual;
    expect(codec.value(single)).not.toContain('addresses');
    expect(codec.parse(codec.key(dual), codec.value(dual))).toEqual({ id: dual.id, name: dual.name });
  });

  it('hostport keeps one "ip:port" (the IPv4 one); an IPv6 address is bracketed', () => {
    const codec = createCodec({
      layout: 'hostport',
      prefix: '/services',
      nodeId: 'n1',
      domain: 'x',
      ttl: 15,
    });
    expect(codec.value(dual)).toBe('10.0.0.5:8080');
    expect(codec.value(service({ node: 'n1', address: 'fd00::5' }))).toBe('[fd00::5]:8080');
  });
});
