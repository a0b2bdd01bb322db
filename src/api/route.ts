/**
 * The API contract's building block: a route declared as data. Method,
 * path (with `:name` segments), a zod schema for its input and one for its
 * output. The server validates the input against it before a handler runs;
 * the client builds the request from it and checks the answer against it.
 * Nothing here does I/O, so the browser UI shares it with the CLI.
 *
 * Input travels as the path's parameters plus, for GET, the query string
 * (every value a string: schemas coerce numbers) and, for POST, a JSON body.
 */
import { z } from 'zod';
import { EbmeshError } from '../errors.js';

export type Method = 'GET' | 'POST';

export interface RouteSpec<I extends z.ZodTypeAny = z.ZodTypeAny, O extends z.ZodTypeAny = z.ZodTypeAny> {
  method: Method;
  path: string;
  input: I;
  output: O;
  /** Answers with newline-delimited JSON, one `output` per line, until either side closes. */
  stream?: true;
  /** One line for the reference in docs/api.md. */
  summary: string;
}

export type RouteTable = Record<string, RouteSpec>;
export type InputOf<R extends RouteSpec> = z.input<R['input']>;
export type ParsedInputOf<R extends RouteSpec> = z.output<R['input']>;
export type OutputOf<R extends RouteSpec> = z.output<R['output']>;

export type CallRoute<I extends z.ZodTypeAny, O extends z.ZodTypeAny> = RouteSpec<I, O> & { stream?: undefined };
export type StreamRoute<I extends z.ZodTypeAny, O extends z.ZodTypeAny> = RouteSpec<I, O> & { stream: true };

/** A route answered with one JSON body. */
export function defineRoute<I extends z.ZodTypeAny, O extends z.ZodTypeAny>(r: Omit<RouteSpec<I, O>, 'stream'>): CallRoute<I, O> {
  return r;
}

/** A route answered with newline-delimited JSON, one `output` per line. */
export function defineStream<I extends z.ZodTypeAny, O extends z.ZodTypeAny>(r: Omit<RouteSpec<I, O>, 'stream'>): StreamRoute<I, O> {
  return { ...r, stream: true };
}

/** No input at all (an empty query or body). */
export const noInput = z.object({}).strict();

const PARAM = /:([A-Za-z][A-Za-z0-9]*)/g;

export function pathParams(path: string): string[] {
  return [...path.matchAll(PARAM)].map((m) => m[1]!);
}

/** The request line and body for one call of `r` with `input`. */
export function requestOf(r: RouteSpec, input: Record<string, unknown>): { path: string; body?: string } {
  const params = new Set(pathParams(r.path));
  const path = r.path.replace(PARAM, (_, name: string) => encodeURIComponent(String(input[name] ?? '')));
  const rest = Object.entries(input).filter(([k, v]) => !params.has(k) && v !== undefined);
  if (r.method === 'GET') {
    const q = new URLSearchParams(rest.map(([k, v]) => [k, String(v)]));
    const s = q.toString();
    return { path: s ? `${path}?${s}` : path };
  }
  return { path, body: JSON.stringify(Object.fromEntries(rest)) };
}

/** The path's parameters, when `pathname` is an instance of `pattern`. */
export function matchPath(pattern: string, pathname: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const got = pathname.split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w.startsWith(':')) {
      if (!g) return undefined;
      try {
        params[w.slice(1)] = decodeURIComponent(g);
      } catch {
        return undefined;
      }
    } else if (w !== g) return undefined;
  }
  return params;
}

/** A zod failure as one line that names each bad field. */
export function describeZod(e: z.ZodError, what: string): string {
  return e.issues.map((i) => `${what}${i.path.length ? `.${i.path.join('.')}` : ''}: ${i.message}`).join('; ');
}

/** Validates `value` against the route's input; the error names the route and the field. */
export function parseInput<R extends RouteSpec>(r: R, value: unknown): ParsedInputOf<R> {
  const res = r.input.safeParse(value);
  if (!res.success) {
    throw new EbmeshError('EBMESH_USAGE', describeZod(res.error, 'request'), { where: `${r.method} ${r.path}` });
  }
  return res.data as ParsedInputOf<R>;
}

/** Validates an answer against the route's output: a peer that answers out of contract is named. */
export function parseOutput<R extends RouteSpec>(r: R, value: unknown): OutputOf<R> {
  const res = r.output.safeParse(value);
  if (!res.success) {
    throw new EbmeshError('EBMESH_API', `answer out of contract: ${describeZod(res.error, 'answer')}`, { where: `${r.method} ${r.path}` });
  }
  return res.data as OutputOf<R>;
}
