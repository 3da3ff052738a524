import { dirname, resolve } from 'node:path';
import { Drop, Liquid, type Template } from 'liquidjs';
import { oneLine } from '@registrar/core/kit';
import { haproxy, hostname, integer, isPlain, json, nginx, token } from './escape.js';

/**
 * Templates are Liquid (LiquidJS): an interpreter of its own little language, built for templates written by
 * one party and filled with data from another (Shopify's shops). Nothing in a template or a value runs as
 * JavaScript; only own properties of the data are visible (no prototype walk); partial names are literals;
 * parse size, render time and memory are bounded. Every `{{ }}` output goes through `token` unless its last
 * filter is a format encoder (`nginx`, `haproxy`, `json`, `hostname`, `integer`), and `raw` is removed, so
 * no registry value reaches the file unencoded.
 */

/** One live instance as a template sees it. */
export interface TemplateInstance {
  readonly id: string;
  /** The service name it was looked up by. */
  readonly service: string;
  /** An IP address (v4 or v6): instances with anything else are not shown to templates. */
  readonly address: string;
  readonly port: number;
  /** `address:port`, IPv6 in brackets: what nginx's `server` and HAProxy's `server` take. */
  readonly endpoint: string;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
}

/** What one render produced and learnt about the services the template reads. */
export interface RenderResult {
  readonly text: string;
  /** Every service the template read. */
  readonly used: ReadonlySet<string>;
  /** Services the template read whose instances are not known yet (their first update has not come). */
  readonly unknown: ReadonlySet<string>;
  /** Services `{% allow_empty %}` lets be rendered without instances; `all` for every one. */
  readonly allowEmpty: ReadonlySet<string> | 'all';
  /** Values the default encoding changed (up to 5), for a warning: they want a format filter. */
  readonly replaced: readonly string[];
}

export interface CompiledTemplate {
  /** The template's file, for logs. */
  readonly file: string;
  /**
   * Render with `lookup` answering `services.<name>`: the instances, or undefined while unknown (rendered as
   * none, and reported in `unknown`). Throws `TemplateError`.
   */
  render(lookup: (name: string) => readonly TemplateInstance[] | undefined): Promise<RenderResult>;
}

/** The template could not be parsed or rendered; the message names the file and, where known, the line. */
export class TemplateError extends Error {
  override readonly name = 'TemplateError';
}

/** Bounds for one template: its size, one render's time, and the memory a render may build strings with. */
const PARSE_LIMIT = 10_000_000;
const RENDER_LIMIT_MS = 10_000;
const MEMORY_LIMIT = 100_000_000;

/** What the template's lookups, filters and tags report during one render. */
interface RenderState {
  used: Set<string>;
  unknown: Set<string>;
  allowEmpty: Set<string> | 'all';
  replaced: string[];
}

/**
 * Names a Drop inherits (`constructor`, `toString`, `__proto__`...), which Liquid would read (and call) instead
 * of asking `liquidMethodMissing`: each is shadowed by a getter, so that it too is just a service name. Not
 * `valueOf`, which Liquid calls to turn a Drop into a value, nor `liquidMethodMissing` itself.
 */
const INHERITED = (() => {
  const names = new Set<string>();
  for (
    let proto: object | null = Drop.prototype;
    proto !== null;
    proto = Object.getPrototypeOf(proto) as object | null
  )
    for (const name of Object.getOwnPropertyNames(proto)) names.add(name);
  names.delete('valueOf');
  names.delete('liquidMethodMissing');
  return [...names];
})();

/** `services.web`, `services["my-api"]`: each name read is recorded, and followed by the caller. */
class Services extends Drop {
  readonly #lookup: (name: string) => readonly TemplateInstance[] | undefined;
  readonly #state: RenderState;

  constructor(lookup: (name: string) => readonly TemplateInstance[] | undefined, state: RenderState) {
    super();
    this.#lookup = lookup;
    this.#state = state;
    for (const name of INHERITED) {
      Object.defineProperty(this, name, { get: () => this.liquidMethodMissing(name), enumerable: false });
    }
  }

  override liquidMethodMissing(key: string | number): readonly TemplateInstance[] {
    const name = String(key);
    this.#state.used.add(name);
    const instances = this.#lookup(name);
    if (instances === undefined) this.#state.unknown.add(name);
    return instances ?? [];
  }
}

const describe = (file: string, error: unknown) =>
  `template ${file}: ${oneLine(error instanceof Error ? error.message : String(error), 400)}`;

/** Parse a template (`file` names it in errors and is where `{% include %}` looks). Throws `TemplateError`. */
export function compileTemplate(source: string, file: string): CompiledTemplate {
  let state: RenderState = { used: new Set(), unknown: new Set(), allowEmpty: new Set(), replaced: [] };
  const liquid = new Liquid({
    root: [dirname(resolve(file))],
    dynamicPartials: false,
    strictFilters: true,
    ownPropertyOnly: true,
    parseLimit: PARSE_LIMIT,
    renderLimit: RENDER_LIMIT_MS,
    memoryLimit: MEMORY_LIMIT,
    outputEscape: (value: unknown) => {
      if (!isPlain(value) && state.replaced.length < 5) state.replaced.push(oneLine(String(value), 60));
      return token(value);
    },
  });
  liquid.unregisterFilter('raw');
  const encoders = { token, nginx, haproxy, json, jsonify: json, hostname, integer };
  for (const [name, handler] of Object.entries(encoders)) {
    liquid.registerFilter(name, { handler: handler as (...args: unknown[]) => unknown, raw: true });
  }
  // `cycle` writes its values without the output encoding; nothing a config needs depends on it.
  liquid.registerTag('cycle', {
    parse() {
      throw new Error('{% cycle %} is not available in registrar templates (its values skip the encoding)');
    },
    render: () => undefined,
  });
  liquid.registerTag('allow_empty', {
    parse(tagToken) {
      this.names = tagToken.args
        .split(/[\s,]+/)
        .map((name) => name.replace(/^["']|["']$/g, ''))
        .filter((name) => name !== '');
    },
    render() {
      const names = this.names as string[];
      if (names.length === 0) state.allowEmpty = 'all';
      else if (state.allowEmpty !== 'all') for (const name of names) state.allowEmpty.add(name);
    },
  });

  let parsed: Template[];
  try {
    parsed = liquid.parse(source, file);
  } catch (error) {
    throw new TemplateError(describe(file, error));
  }
  const renderOnce = async (lookup: (name: string) => readonly TemplateInstance[] | undefined) => {
    state = { used: new Set(), unknown: new Set(), allowEmpty: new Set(), replaced: [] };
    const current = state;
    let text: unknown;
    try {
      text = await liquid.render(parsed, { services: new Services(lookup, current) });
    } catch (error) {
      throw new TemplateError(describe(file, error));
    }
    return {
      text: String(text),
      used: current.used,
      unknown: current.unknown,
      allowEmpty: current.allowEmpty,
      replaced: current.replaced,
    };
  };
  // The filters and tags report into `state`: renders of one template run one after the other.
  let last: Promise<unknown> = Promise.resolve();
  return {
    file,
    render(lookup) {
      const result = last.then(() => renderOnce(lookup));
      last = result.catch(() => undefined);
      return result;
    },
  };
}
