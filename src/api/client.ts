/**
 * The one typed client of every ebmesh API. It builds a request from a
 * route's declaration, sends it through a transport (a unix socket or TCP
 * from Node, fetch in the browser) and checks the answer against the
 * route's output schema, so a caller gets the declared type or an error,
 * never an unchecked `any`.
 */
import { EbmeshError, isErrorCode } from '../errors.js';
import { parseOutput, requestOf, type InputOf, type OutputOf, type RouteSpec } from './route.js';

export interface RawAnswer {
  status: number;
  text: string;
}

export interface Transport {
  /** Where the calls go, for messages ("the node ebmesh", "the control plane at HOST:PORT"). */
  readonly peer: string;
  request(method: string, path: string, body: string | undefined, timeoutMs: number): Promise<RawAnswer>;
  /** Newline-delimited JSON, one line at a time, until the answer ends or the signal aborts. */
  stream(method: string, path: string, onLine: (line: string) => void, signal?: AbortSignal): Promise<void>;
}

export interface CallOptions {
  timeoutMs?: number;
}

/** An error answer as the EbmeshError it was on the other side. */
export function errorFromAnswer(a: RawAnswer, what: string): EbmeshError {
  let body: { error?: { code?: unknown; message?: unknown; hint?: unknown } } | undefined;
  try {
    body = JSON.parse(a.text) as typeof body;
  } catch { /* not JSON: described below */ }
  const e = body?.error;
  if (!e) return new EbmeshError('EBMESH_API', `${what}: HTTP ${a.status}: ${a.text.slice(0, 200)}`);
  const hint = typeof e.hint === 'string' ? e.hint : undefined;
  return new EbmeshError(isErrorCode(e.code) ? e.code : 'EBMESH_API', String(e.message ?? `HTTP ${a.status}`), hint ? { hint } : {});
}

export class ApiClient {
  constructor(readonly transport: Transport, private readonly defaultTimeoutMs = 120_000) {}

  async call<R extends RouteSpec>(r: R, input: InputOf<R>, opts: CallOptions = {}): Promise<OutputOf<R>> {
    const req = requestOf(r, input as Record<string, unknown>);
    const a = await this.transport.request(r.method, req.path, req.body, opts.timeoutMs ?? this.defaultTimeoutMs);
    if (a.status !== 200) throw errorFromAnswer(a, `${r.method} ${r.path} at ${this.transport.peer}`);
    let json: unknown;
    try {
      json = JSON.parse(a.text);
    } catch {
      throw new EbmeshError('EBMESH_API', `${this.transport.peer} answered ${r.method} ${r.path} with something that is not JSON: ${a.text.slice(0, 200)}`);
    }
    return parseOutput(r, json);
  }

  /** A streaming route: each item, checked against the route's output, until the stream ends or `signal` aborts. */
  async follow<R extends RouteSpec & { stream: true }>(r: R, input: InputOf<R>, onItem: (item: OutputOf<R>) => void, signal?: AbortSignal): Promise<void> {
    const req = requestOf(r, input as Record<string, unknown>);
    await this.transport.stream(r.method, req.path, (line) => {
      if (!line.trim()) return;
      onItem(parseOutput(r, JSON.parse(line)));
    }, signal);
  }
}
