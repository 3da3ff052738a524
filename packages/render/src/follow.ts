import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import {
  defer,
  EMPTY,
  filter,
  merge,
  mergeMap,
  Observable,
  of,
  share,
  Subject,
  Subscription,
  timer,
} from 'rxjs';
import { silentLogger, type Instance, type Logger, type ServiceFollower } from '@registrar/core';
import { backoffDelay, formatHostPort, oneLine } from '@registrar/core/kit';
import { coalesceWhileBusy } from '@registrar/core/internal';
import { runCommand } from './command.js';
import { readCurrent, replaceFile, restoreFile, type CurrentFile } from './files.js';
import { settle, type WaitWindow } from './settle.js';
import { compileTemplate, TemplateError, type CompiledTemplate, type TemplateInstance } from './template.js';

/** One template rendered into one file. */
export interface RenderTarget {
  /** The template's file (Liquid). */
  readonly template: string;
  readonly out: string;
  /** Run (`/bin/sh -c`) with the new file in place; failing, the previous file is put back. */
  readonly check?: string;
  /** Run after the file changed and its check passed, e.g. `nginx -s reload`. */
  readonly reload?: string;
}

/**
 * What became of one render: `written` (new bytes in place, checked and reloaded), `reloaded` (a reload that
 * had failed went through), `unchanged` (same bytes: nothing run), `waiting` (a service read for the first
 * time has not answered yet), `empty` (a service has no instances and the template does not allow it), and
 * the failures, each of which leaves the previous file in place.
 */
export type RenderOutcome =
  | 'written'
  | 'reloaded'
  | 'unchanged'
  | 'waiting'
  | 'empty'
  | 'template-error'
  | 'write-failed'
  | 'check-failed'
  | 'reload-failed';

/** Outcomes after which the file on disk is the template's current rendering, checked and reloaded. */
export const GOOD_OUTCOMES: ReadonlySet<RenderOutcome> = new Set(['written', 'reloaded', 'unchanged']);

/** What following reports, for metrics and readiness. Logging is done here already. */
export type RenderEvent =
  | { readonly kind: 'registry'; readonly service: string; readonly reachable: boolean }
  | { readonly kind: 'instances'; readonly service: string; readonly count: number }
  | {
      readonly kind: 'render';
      readonly target: RenderTarget;
      readonly outcome: RenderOutcome;
      readonly seconds: number;
    }
  /** A template read again (`reread$`): `error` when it did not parse, and the previous one stays in use. */
  | { readonly kind: 'template'; readonly target: RenderTarget; readonly error?: string };

export interface RenderFollowOptions {
  readonly follower: ServiceFollower;
  readonly targets: readonly RenderTarget[];
  /** Changes within this window fold into one render (`--wait min:max`). Default: none, render at once. */
  readonly wait?: WaitWindow;
  /** Bound of each `check` and `reload` command. Default 30 s. */
  readonly commandTimeoutMs?: number;
  /** Each value reads every template file again (the CLI's SIGHUP). */
  readonly reread$?: Observable<unknown>;
  /** Most distinct services the templates may read (a name may come from a registry value). Default 256. */
  readonly maxServices?: number;
  readonly logger?: Logger;
}

/** Read and parse a template file; a `TemplateError` says what is wrong and where. */
export function loadTemplate(file: string): CompiledTemplate {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (error) {
    throw new TemplateError(
      `template ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
    );
  }
  return compileTemplate(source, file);
}

/** A followed service as the renders see it. */
interface ServiceState {
  /** Undefined until the first update. */
  instances?: readonly TemplateInstance[];
  reachable: boolean;
  /** Why it cannot be followed (a name the registry layout cannot hold). */
  invalid?: string;
}

/** One target's memory between renders. */
interface TargetState {
  readonly target: RenderTarget;
  readonly log: Logger;
  template: CompiledTemplate;
  /** The last problem logged, so that a failure repeating itself is logged once. */
  problem?: string;
  /** Bytes whose check failed: not checked again until the rendering changes. */
  failedText?: string;
  /** A reload failed: retried (with backoff) until one goes through. */
  reloadPending: boolean;
  reloadAttempt: number;
  replacedWarned: boolean;
  ownerWarned: boolean;
}

const isUsable = (instance: Instance) =>
  isIP(instance.address) !== 0 &&
  !instance.address.includes('%') &&
  Number.isInteger(instance.port) &&
  instance.port >= 1 &&
  instance.port <= 65535;

function view(service: string, instance: Instance): TemplateInstance {
  return Object.freeze({
    id: instance.id,
    service,
    address: instance.address,
    port: instance.port,
    endpoint: formatHostPort({ host: instance.address, port: instance.port }),
    tags: Object.freeze([...(instance.tags ?? [])]),
    // Spread defines own properties: a key such as `__proto__` stays a plain key.
    meta: Object.freeze({ ...instance.meta }),
  });
}

const elapsed = (started: number) => (performance.now() - started) / 1000;

/**
 * Keep each target's file equal to its template rendered from the registry. The services a template reads
 * (`services.web`) are followed as it reads them, through the registry's follower (an etcd watch, ZooKeeper
 * watches, Consul blocking queries on `?passing`). On start and after every change (folded by `wait`, and
 * while a render runs): render, and when the bytes differ put the new file in place, run `check`, put the
 * old file back if it fails, else run `reload`. A registry outage, a template error, a failed check or an
 * empty service the template does not allow leave the last good file where it is. Subscribe to run it;
 * unsubscribe to stop. Throws a `TemplateError` at once for a template that does not parse.
 */
export function followIntoFiles(options: RenderFollowOptions): Observable<RenderEvent> {
  const log = options.logger ?? silentLogger;
  const commandTimeoutMs = options.commandTimeoutMs ?? 30_000;
  const maxServices = options.maxServices ?? 256;
  const targets: TargetState[] = options.targets.map((target) => ({
    target,
    log: log.child({ template: target.template, out: target.out }),
    template: loadTemplate(target.template),
    reloadPending: false,
    reloadAttempt: 0,
    replacedWarned: false,
    ownerWarned: false,
  }));

  return new Observable<RenderEvent>((subscriber) => {
    const services = new Map<string, ServiceState>();
    const changed$ = new Subject<void>();
    const follows = new Subscription();
    const emit = (event: RenderEvent) => subscriber.next(event);

    /** Start following `name` (once); a change of it triggers every target's render. */
    const follow = (name: string) => {
      if (services.has(name)) return;
      if (services.size >= maxServices) {
        services.set(name, {
          reachable: true,
          invalid: `the templates read more than ${maxServices} services`,
        });
        return;
      }
      const state: ServiceState = { reachable: true };
      services.set(name, state);
      const slog = log.child({ service: name });
      const skipped = new Set<string>();
      try {
        follows.add(
          options.follower.follow(name).subscribe({
            // The contract says a follow never errors; if one did, the last file stays and it is said.
            error: (error: unknown) => {
              state.reachable = false;
              slog.error({ err: error }, `following ${name} failed; keeping the files`);
              emit({ kind: 'registry', service: name, reachable: false });
            },
            next: (update) => {
              if (update.kind === 'unreachable') {
                state.reachable = false;
                slog.warn(
                  { err: update.error },
                  `registry unreachable while following ${name}; keeping the files`,
                );
                emit({ kind: 'registry', service: name, reachable: false });
                return;
              }
              if (!state.reachable) {
                state.reachable = true;
                slog.info(`registry reachable again; following ${name}`);
                emit({ kind: 'registry', service: name, reachable: true });
              }
              const usable: TemplateInstance[] = [];
              for (const instance of update.instances) {
                if (isUsable(instance)) usable.push(view(name, instance));
                else if (!skipped.has(instance.id)) {
                  skipped.add(instance.id);
                  slog.warn(
                    { instance: instance.id, address: instance.address, port: instance.port },
                    'instance skipped: templates get only an IP address and a port',
                  );
                }
              }
              state.instances = usable;
              emit({ kind: 'instances', service: name, count: usable.length });
              changed$.next();
            },
          }),
        );
      } catch (error) {
        // A name the registry's layout cannot hold (ConfigError): a template problem, said by the render.
        state.invalid = oneLine(error instanceof Error ? error.message : String(error), 300);
      }
    };

    /** Log a problem once while it repeats; `level` warn for what is no fault of the template. */
    const problem = (t: TargetState, message: string, level: 'warn' | 'error' = 'error', fields = {}) => {
      if (t.problem === message) return;
      t.problem = message;
      t.log[level](fields, message);
    };
    const resolved = (t: TargetState) => {
      if (t.problem === undefined) return;
      t.problem = undefined;
      t.log.info(`${t.target.out} is current again`);
    };

    const retry$ = new Subject<TargetState>();

    const reload = async (t: TargetState): Promise<boolean> => {
      if (t.target.reload === undefined) return true;
      const result = await runCommand(t.target.reload, { timeoutMs: commandTimeoutMs });
      if (result.ok) {
        t.reloadPending = false;
        t.reloadAttempt = 0;
        return true;
      }
      t.reloadPending = true;
      const delay = backoffDelay(++t.reloadAttempt);
      problem(t, `--reload failed (${result.how}); retrying until it succeeds`, 'error', {
        command: t.target.reload,
        output: result.output,
        retryInMs: Math.round(delay),
      });
      follows.add(timer(delay).subscribe(() => retry$.next(t)));
      return false;
    };

    const render = async (t: TargetState): Promise<RenderOutcome> => {
      const { out, check } = t.target;
      let result;
      try {
        result = await t.template.render((name) => services.get(name)?.instances);
      } catch (error) {
        problem(t, (error as Error).message);
        return 'template-error';
      }
      for (const name of result.used) follow(name);
      const invalid = [...result.used].filter((name) => services.get(name)?.invalid !== undefined);
      if (invalid.length > 0) {
        const name = invalid[0];
        problem(
          t,
          `template ${t.target.template}: cannot follow service ${name}: ${services.get(name)?.invalid}`,
        );
        return 'template-error';
      }
      // A service not known when it was read (followed just now): the render comes again with its instances.
      if (result.unknown.size > 0) return 'waiting';
      const empty = [...result.used].filter(
        (name) =>
          services.get(name)?.instances?.length === 0 &&
          result.allowEmpty !== 'all' &&
          !result.allowEmpty.has(name),
      );
      if (empty.length > 0) {
        problem(
          t,
          `service ${empty.join(', ')} has no live instances: keeping the last ${out} (a template may allow it with {% allow_empty ${empty[0]} %})`,
          'warn',
        );
        return 'empty';
      }
      if (result.replaced.length > 0 && !t.replacedWarned) {
        t.replacedWarned = true;
        t.log.warn(
          { values: result.replaced },
          'values with characters outside letters, digits and . _ : / @ + = , [ ] - were written with _ instead; give them a format filter (nginx, haproxy, json, hostname)',
        );
      }

      let previous: CurrentFile | undefined;
      const bytes = Buffer.from(result.text);
      try {
        previous = await readCurrent(out);
      } catch (error) {
        problem(t, `cannot read ${out}: ${(error as Error).message}`);
        return 'write-failed';
      }
      if (previous?.bytes.equals(bytes)) {
        if (t.reloadPending) {
          if (!(await reload(t))) return 'reload-failed';
          resolved(t);
          return 'reloaded';
        }
        t.failedText = undefined;
        resolved(t);
        return 'unchanged';
      }
      // Checked and refused already: the same bytes are refused again, and were reported.
      if (result.text === t.failedText) return 'check-failed';
      try {
        const ownerKept = await replaceFile(out, bytes, previous?.stats);
        if (!ownerKept && !t.ownerWarned) {
          t.ownerWarned = true;
          t.log.warn(
            `cannot keep the owner of ${out} (not permitted): the new file is owned by this process's user`,
          );
        }
      } catch (error) {
        problem(t, `cannot write ${out}: ${(error as Error).message}`);
        return 'write-failed';
      }
      if (check !== undefined) {
        const checked = await runCommand(check, { timeoutMs: commandTimeoutMs });
        if (!checked.ok) {
          t.failedText = result.text;
          try {
            await restoreFile(out, previous);
          } catch (error) {
            t.log.error({ err: error }, `cannot put the previous ${out} back after a failed check`);
          }
          problem(
            t,
            `--check failed (${checked.how}): the new ${out} was not kept, the previous one stays`,
            'error',
            {
              command: check,
              output: checked.output,
            },
          );
          return 'check-failed';
        }
      }
      t.failedText = undefined;
      const counts = Object.fromEntries(
        [...result.used].map((name) => [name, services.get(name)?.instances?.length]),
      );
      const reloaded = await reload(t);
      t.log.info({ bytes: bytes.length, services: counts, reloaded }, `wrote ${out}`);
      if (!reloaded) return 'reload-failed';
      resolved(t);
      return 'written';
    };

    const reread$ = (options.reread$ ?? EMPTY).pipe(
      mergeMap(() =>
        targets.map((t): RenderEvent => {
          try {
            t.template = loadTemplate(t.target.template);
            t.replacedWarned = false;
            t.failedText = undefined;
            t.log.info('template read again');
            return { kind: 'template', target: t.target };
          } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            t.log.error(`${message}; the previous template stays in use`);
            return { kind: 'template', target: t.target, error: message };
          }
        }),
      ),
      share(),
    );

    const renders$ = targets.map((t) =>
      merge(
        of(undefined),
        changed$,
        retry$.pipe(filter((which) => which === t)),
        // A template read again renders at once.
        reread$.pipe(filter((e) => e.kind === 'template' && e.target === t.target && e.error === undefined)),
      ).pipe(
        settle(options.wait ?? { minMs: 0, maxMs: 0 }),
        coalesceWhileBusy(() =>
          defer(async (): Promise<RenderEvent> => {
            const started = performance.now();
            const outcome = await render(t);
            return { kind: 'render', target: t.target, outcome, seconds: elapsed(started) };
          }),
        ),
      ),
    );
    const running = merge(reread$, ...renders$).subscribe({
      next: emit,
      error: (error: unknown) => subscriber.error(error),
    });
    return () => {
      running.unsubscribe();
      follows.unsubscribe();
    };
  });
}
