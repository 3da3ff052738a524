import { constants } from 'node:os';

const byName = constants.signals as Readonly<Record<string, number>>;

/** SIGTERM: what `docker stop` sends unless the image or container names another StopSignal. */
export const SIGTERM = byName.SIGTERM ?? 15;
/** SIGINT: the other signal that asks a process to shut down (Ctrl-C, many images' StopSignal). */
export const SIGINT = byName.SIGINT ?? 2;

/**
 * A Docker `StopSignal` (`SIGQUIT`, `QUIT`, `3`) as a signal number; undefined when it names none. Docker's
 * kill events carry numbers, and Linux containers use Linux's numbering, which is this process's too.
 */
export function signalNumber(text: string | undefined): number | undefined {
  const value = text?.trim().toUpperCase() ?? '';
  if (/^\d+$/.test(value)) return Number(value);
  return byName[value.startsWith('SIG') ? value : `SIG${value}`];
}

/** `SIGTERM` for 15; the number itself when it has no name. */
export function signalName(signal: number): string {
  return Object.keys(byName).find((name) => byName[name] === signal) ?? String(signal);
}
