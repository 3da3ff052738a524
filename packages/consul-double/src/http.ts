import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseGoDuration } from '@registrar/core/kit';
import type { AgentState } from './agent.js';
import type { Call } from './context.js';
import { BadRequest } from './decode.js';

const MAX_WAIT = 600_000;
const DEFAULT_WAIT = 300_000;

/** An answer other than 200: its status and the plain-text body Consul sends. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A JSON answer; with `index`, the headers of a blocking query's answer. */
export function send(call: Call, status: number, body: unknown, index?: number): void {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (index !== undefined) {
    headers['X-Consul-Index'] = String(Math.max(index, 1));
    headers['X-Consul-KnownLeader'] = 'true';
    headers['X-Consul-LastContact'] = '0';
  }
  call.res.writeHead(status, headers);
  call.res.end(body === undefined ? '' : JSON.stringify(body));
}

/** An error as Consul answers it: its status (a decoding error is 400, anything unexpected 500) and message. */
export function sendError(res: ServerResponse, err: unknown): void {
  const status = err instanceof HttpError ? err.status : err instanceof BadRequest ? 400 : 500;
  const message = err instanceof Error ? err.message : String(err);
  if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(message);
}

export function readBytes(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function readBody(req: IncomingMessage): Promise<string> {
  return (await readBytes(req)).toString('utf8');
}

/** `?wait=` in ms, clamped to [0, 10m]; 5m when absent. */
function waitOf(url: URL): number {
  const param = url.searchParams.get('wait');
  let waitMs = DEFAULT_WAIT;
  if (param) {
    try {
      waitMs = parseGoDuration(param);
    } catch (err) {
      throw new HttpError(400, `Invalid wait time: ${(err as Error).message}`);
    }
  }
  return Math.min(Math.max(waitMs, 0), MAX_WAIT);
}

/** Blocking query: hold the request until `indexOf()` passes `?index=` or `?wait=` runs out. */
export async function block(
  call: Call,
  agent: Pick<AgentState, 'waitForChange'>,
  indexOf: () => number,
): Promise<number> {
  const wanted = Number(call.url.searchParams.get('index') ?? '0');
  if (!Number.isFinite(wanted) || wanted <= 0 || indexOf() > wanted) return indexOf();
  const deadline = Date.now() + waitOf(call.url);
  let closed = false;
  call.res.once('close', () => (closed = true));
  while (!closed && indexOf() <= wanted && Date.now() < deadline) {
    const change = agent.waitForChange();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, deadline - Date.now())));
    const onClose = () => change.cancel();
    call.res.once('close', onClose);
    await Promise.race([change.promise, timeout]);
    clearTimeout(timer);
    change.cancel();
    call.res.off('close', onClose);
  }
  return indexOf();
}
