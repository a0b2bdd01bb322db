/**
 * One HTTP server for every API of ebmesh: it serves the route tables it is
 * given, and nothing else. A process composes its own: the node agent serves
 * the node routes, the control plane its admin and agent routes; nobody
 * registers a route by being imported.
 *
 * For each request: find the route by method and path, read and validate the
 * input against the route's schema (a bad field is a 400 that names it), run
 * the handler, answer JSON (or NDJSON for a stream). Errors become an
 * `{ error: { code, message, hint, where } }` body with the status the error
 * catalogue gives the code.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as TlsServerOptions } from 'node:https';
import { chmodSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { EbmeshError, httpStatusOf } from '../errors.js';
import { privateDir } from '../host/private-files.js';
import { ResourceError } from '../resources/index.js';
import { matchPath, parseInput, type OutputOf, type ParsedInputOf, type RouteSpec, type RouteTable } from './route.js';

/** What a handler learns about the caller beyond the input. */
export interface CallContext {
  /** The verified client certificate's SPIFFE ID, on a TLS listener that asks for one. */
  peer?: string;
  /** The request's Authorization header, for the routes that take a bearer token. */
  authorization?: string;
}

export type Handler<R extends RouteSpec> = R extends { stream: true }
  ? (input: ParsedInputOf<R>, res: ServerResponse, call: CallContext) => void
  : (input: ParsedInputOf<R>, call: CallContext) => Promise<OutputOf<R>>;

export type Handlers<T extends RouteTable> = { [K in keyof T]: Handler<T[K]> };

/** One route with its handler, its input already parsed by the route's schema when it runs. */
interface Entry {
  route: RouteSpec;
  run(input: unknown, call: CallContext, res: ServerResponse): unknown;
}

/** A route table with its handlers: one part of what a server serves. */
export interface Served {
  entries: Entry[];
}

export function serve<T extends RouteTable>(routes: T, handlers: Handlers<T>): Served {
  const entries: Entry[] = [];
  for (const name of Object.keys(routes) as Array<keyof T & string>) {
    const route = routes[name]!;
    const handler = handlers[name] as Handler<RouteSpec>;
    entries.push({
      route,
      // `input` comes from parseInput(route, ...): the type this route's handler declares.
      run: (input, call, res) => (route.stream
        ? (handler as (i: unknown, r: ServerResponse, c: CallContext) => void)(input, res, call)
        : (handler as (i: unknown, c: CallContext) => Promise<unknown>)(input, call)),
    });
  }
  return { entries };
}

export type Listen =
  | { socketPath: string; tls?: TlsServerOptions }
  | { host: string; port: number; tls?: TlsServerOptions };

/** Request bodies beyond this are refused: the API carries resources and reports, not bulk data. */
const MAX_BODY = 32 << 20;

/** The answer's error body. `where`, the request's method and path, stands in for an error that says no place of its own. */
export function errorBody(e: unknown, where?: string): { error: Record<string, unknown> } {
  if (e instanceof ResourceError) return { error: { ...e.toJSON(), problems: e.problems } };
  if (e instanceof EbmeshError) return { error: { ...e.toJSON(), where: e.where ?? where } };
  return { error: { code: 'EBMESH_INTERNAL', message: (e as Error)?.message ?? String(e), where } };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** `where`: the request's method and path, which every refusal names. */
async function readJson(req: IncomingMessage, where: string): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new EbmeshError('EBMESH_USAGE', `request body over ${MAX_BODY} bytes`, { where });
    chunks.push(c as Buffer);
  }
  if (!chunks.length) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new EbmeshError('EBMESH_USAGE', `request body is not JSON: ${(e as Error).message}`, { where });
  }
}

interface Found {
  entry: Entry;
  params: Record<string, string>;
}

/** Every route that serves this method and path, in table order. */
function candidates(parts: readonly Served[], method: string, pathname: string): Found[] {
  const found: Found[] = [];
  for (const p of parts) {
    for (const entry of p.entries) {
      if (entry.route.method !== method) continue;
      const params = matchPath(entry.route.path, pathname);
      if (params) found.push({ entry, params });
    }
  }
  return found;
}

/** The peer's SPIFFE ID from a verified TLS client certificate. */
function peerOf(req: IncomingMessage): string | undefined {
  const sock = req.socket as { authorized?: boolean; getPeerCertificate?: () => { subjectaltname?: string } };
  if (!sock.authorized || !sock.getPeerCertificate) return undefined;
  const san = sock.getPeerCertificate().subjectaltname ?? '';
  return /URI:(spiffe:\/\/[^,\s]+)/.exec(san)?.[1];
}

/**
 * The request-target's path and query, as sent. Not `new URL(target, base)`:
 * it throws on some targets ("//%F4%84%8F%89/": a host that is not one) and
 * reads "//host/v1/status" as the path /v1/status.
 */
export function requestTarget(target: string): { pathname: string; search: string; searchParams: URLSearchParams } {
  const q = target.indexOf('?');
  const search = q < 0 ? '' : target.slice(q);
  return { pathname: q < 0 ? target : target.slice(0, q), search, searchParams: new URLSearchParams(search) };
}

async function dispatch(parts: readonly Served[], req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = requestTarget(req.url ?? '/');
  const found = candidates(parts, req.method ?? 'GET', url.pathname);
  if (!found.length) return send(res, 404, errorBody(new EbmeshError('EBMESH_NOT_FOUND', `${req.method} ${url.pathname} not found`)));
  const peer = peerOf(req);
  const authorization = req.headers.authorization;
  const call: CallContext = { ...(peer ? { peer } : {}), ...(authorization ? { authorization } : {}) };
  const where = `${req.method} ${url.pathname}`;
  try {
    const raw = req.method === 'GET' ? Object.fromEntries(url.searchParams) : await readJson(req, where);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new EbmeshError('EBMESH_USAGE', 'request body must be a JSON object', { where });
    // Routes may share a path (the flow list and its stream): the first whose input fits serves; the last one's error is reported.
    let chosen: { found: Found; input: unknown } | undefined;
    let lastError: unknown;
    for (const f of found) {
      try {
        chosen = { found: f, input: parseInput(f.entry.route, { ...raw, ...f.params }) };
        break;
      } catch (e) {
        lastError = e;
      }
    }
    if (!chosen) throw lastError;
    const { found: { entry }, input } = chosen;
    const out = entry.run(input, call, res);
    if (entry.route.stream) return;
    send(res, 200, await out);
  } catch (e) {
    if (res.headersSent) return void res.destroy();
    send(res, httpStatusOf(e), errorBody(e, where));
  }
}

/** Starts a server for `parts` on a unix socket (0600, only root) or on TCP; in TLS when given. */
export function startServer(listen: Listen, parts: readonly Served[]): Promise<Server> {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    // Whatever a request does, it never takes the process down: an error that escaped is its 500.
    dispatch(parts, req, res).catch((e: unknown) => {
      if (res.headersSent) res.destroy();
      else send(res, 500, errorBody(e, `${req.method} ${req.url}`));
    });
  };
  const server = listen.tls ? createHttpsServer(listen.tls, onRequest) : createHttpServer(onRequest);
  // A peer that fails the handshake never reaches a route; say nothing of it but keep serving.
  server.on('tlsClientError', () => undefined);
  // A request Node's HTTP parser refuses (a bad request line, header or framing) is answered as our refusals are.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const body = JSON.stringify(errorBody(new EbmeshError('EBMESH_USAGE', `not an HTTP/1.1 request this API can read (${err.code ?? err.message})`, { where: 'the request line and headers' })));
    socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const ready = () => { server.off('error', reject); resolve(server); };
    if ('socketPath' in listen) {
      privateDir(dirname(listen.socketPath));
      rmSync(listen.socketPath, { force: true });
      server.listen(listen.socketPath, () => { chmodSync(listen.socketPath, 0o600); ready(); });
    } else {
      server.listen(listen.port, listen.host, ready);
    }
  });
}

/** Stops accepting and ends the open connections (long polls and streams included). */
export function stopServer(server: Server | undefined): void {
  if (!server) return;
  server.close();
  server.closeAllConnections();
}
