import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileTemplate, TemplateError, type TemplateInstance } from './template.js';

const instance = (service: string, n: number, extra: Partial<TemplateInstance> = {}): TemplateInstance => ({
  id: `node:${service}-${n}:80`,
  service,
  address: `10.0.0.${n}`,
  port: 8000 + n,
  endpoint: `10.0.0.${n}:${8000 + n}`,
  tags: [],
  meta: {},
  ...extra,
});

const lookupOf =
  (known: Record<string, readonly TemplateInstance[]>) =>
  (name: string): readonly TemplateInstance[] | undefined =>
    Object.hasOwn(known, name) ? known[name] : undefined;

const dir = mkdtempSync(join(tmpdir(), 'registrar-template-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('compileTemplate', () => {
  it('renders the services it reads, and reports which it read and which are not known yet', async () => {
    const template = compileTemplate(
      `{% for i in services.web %}{{ i.endpoint }} {{ i.id }}\n{% endfor %}{{ services["my-api"].size }} {{ services.other.size }}`,
      'web.tpl',
    );
    const result = await template.render(
      lookupOf({ web: [instance('web', 1), instance('web', 2)], 'my-api': [] }),
    );
    expect(result.text).toBe('10.0.0.1:8001 node:web-1:80\n10.0.0.2:8002 node:web-2:80\n0 0');
    expect([...result.used]).toEqual(['web', 'my-api', 'other']);
    expect([...result.unknown]).toEqual(['other']);
    expect(result.allowEmpty).toEqual(new Set());
  });

  it('renders started together run one after the other, each reporting only its own', async () => {
    // The include reads a file: a render waits there, and the other would start meanwhile.
    writeFileSync(join(dir, 'nothing.liquid'), '');
    const template = compileTemplate(
      '{% include nothing.liquid %}{% if services.x.size == 0 %}{% allow_empty %}{% endif %}',
      join(dir, 'concurrent.tpl'),
    );
    const [empty, full] = await Promise.all([
      template.render(lookupOf({ x: [] })),
      template.render(lookupOf({ x: [instance('x', 1)] })),
    ]);
    expect(empty.allowEmpty).toBe('all');
    expect(full.allowEmpty).toEqual(new Set());
  });

  it('{% allow_empty %} names the services that may be rendered empty, or all of them', async () => {
    const named = compileTemplate(`{% allow_empty web, "api" %}{{ services.web.size }}`, 't');
    expect((await named.render(lookupOf({ web: [] }))).allowEmpty).toEqual(new Set(['web', 'api']));
    const all = compileTemplate(`{% if true %}{% allow_empty %}{% endif %}`, 't');
    expect((await all.render(lookupOf({}))).allowEmpty).toBe('all');
    // Only where it is rendered: a branch not taken allows nothing.
    const skipped = compileTemplate(`{% if false %}{% allow_empty %}{% endif %}`, 't');
    expect((await skipped.render(lookupOf({}))).allowEmpty).toEqual(new Set());
  });

  it('every output without a format filter is one plain token; format filters write their own format', async () => {
    const hostile = instance('web', 1, {
      tags: ['a "b"; }'],
      meta: { zone: 'eu;\n} server {', weight: '5' },
    });
    const template = compileTemplate(
      [
        '{{ services.web[0].meta.zone }}',
        '{{ services.web[0].tags[0] }}',
        '{{ services.web[0].meta.zone | nginx }}',
        '{{ services.web[0].meta.zone | haproxy }}',
        '{{ services.web[0].meta.zone | json }}',
        '{{ services.web[0].meta | json }}',
        '{{ services.web[0].meta.zone | hostname }}',
        '{{ services.web[0].meta.weight | integer: 1 }}',
        '{{ services.web[0].meta.zone | integer: 1 }}',
        '{% echo services.web[0].meta.zone %}',
        '{{ services.web[0].meta.zone | upcase }}',
      ].join('\n'),
      't',
    );
    const result = await template.render(lookupOf({ web: [hostile] }));
    expect(result.text.split('\n')).toEqual([
      'eu____server__',
      'a__b____',
      '"eu;_} server {"',
      "'eu;_} server {'",
      '"eu;\\n} server {"',
      '{"zone":"eu;\\n} server {","weight":"5"}',
      'eu----server',
      '5',
      '1',
      'eu____server__',
      'EU____SERVER__',
    ]);
    expect(result.replaced).toHaveLength(4);
  });

  it('no way around the encoding or into JavaScript: raw and cycle are gone, prototypes are not visible', async () => {
    expect(() => compileTemplate('{{ x | raw }}', 'raw.tpl')).toThrow(/raw\.tpl.*raw/);
    expect(() => compileTemplate('{% cycle services.web[0].meta.x, "b" %}', 'cycle.tpl')).toThrow(
      TemplateError,
    );
    const template = compileTemplate(
      '[{{ services.web[0].constructor }}][{{ services.web[0].meta.constructor.name }}][{{ services.web[0].meta.__proto__ }}][{{ services.web[0].tags.constructor }}]',
      't',
    );
    const meta = JSON.parse('{"__proto__":"own"}') as Record<string, string>;
    const result = await template.render(lookupOf({ web: [instance('web', 1, { meta: { ...meta } })] }));
    expect(result.text).toBe('[][][own][]');
    // `services.constructor` is a service named so, not the object's constructor.
    const names = compileTemplate(
      '{{ services.constructor.size }}{{ services.toString.size }}{{ services.__proto__.size }}{{ services }}',
      't',
    );
    const read = await names.render(lookupOf({ constructor: [instance('constructor', 1)] }));
    expect(read.used).toEqual(new Set(['constructor', 'toString', '__proto__']));
    expect(read.text).toBe('100');
  });

  it('a parse error names the file and the line; partial names must be literals', () => {
    expect(() => compileTemplate('line one\n{% for i in services.web %}\nno end', 'bad.tpl')).toThrow(
      /^template bad\.tpl: .*line:2/,
    );
    expect(() => compileTemplate('{{ x | no_such_filter }}', 'f.tpl')).toThrow(
      /undefined filter: no_such_filter/,
    );
  });

  it('includes partials from the template’s own directory, by literal name only', async () => {
    writeFileSync(join(dir, 'server.liquid'), 'server {{ i.endpoint }};');
    const template = compileTemplate(
      '{% for i in services.web %}{% include server.liquid %}{% endfor %}',
      join(dir, 'main.tpl'),
    );
    expect((await template.render(lookupOf({ web: [instance('web', 1)] }))).text).toBe(
      'server 10.0.0.1:8001;',
    );
    const dynamic = compileTemplate('{% include services.web[0].meta.file %}', join(dir, 'main.tpl'));
    await expect(
      dynamic.render(lookupOf({ web: [instance('web', 1, { meta: { file: '/etc/passwd' } })] })),
    ).rejects.toThrow(/Failed to lookup "services\.web\[0\]\.meta\.file"/);
  });
});
