/**
 * The node's API: HTTP/1.1 with JSON over a unix socket that only root can
 * reach. The CLI and the UI use it and nothing else, so neither holds logic
 * the API lacks.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { EbmeshError } from '../errors.js';
import { ResourceError, parseResources, kindAliases, kinds, namespaced, type AnyResource } from '../resources/index.js';
import { applyResources, deleteResources, readSnapshot, wlKey, RESOURCES } from '../controlplane/index.js';
import type { NodeDaemon } from '../agent/node-agent.js';

export type Handler = (req: { url: URL; body: unknown }, node: NodeDaemon) => Promise<unknown>;

const routes = new Map<string, Handler>();

/** Later parts (observe, policy…) add their endpoints here. */
export function route(method: string, path: string, h: Handler): void {
  routes.set(`${method} ${path}`, h);
}

/**
 * Endpoints that answer with a stream (NDJSON) rather than one JSON body.
 * A stream handler returns false to leave the request to the JSON routes.
 */
export type StreamHandler = (req: { url: URL }, res: ServerResponse, node: NodeDaemon) => boolean;
const streams = new Map<string, StreamHandler>();
export function streamRoute(method: string, path: string, h: StreamHandler): void {
  streams.set(`${method} ${path}`, h);
}

/** The handler of an endpoint, so that one endpoint can build on another in-process (the service map reads /v1/flows). */
export function routeHandler(method: string, path: string): Handler | undefined {
  return routes.get(`${method} ${path}`);
}

function notFound(what: string): EbmeshError {
  return new EbmeshError('EBMESH_NOT_FOUND', `${what} not found`);
}

export function resolveKind(text: string): string {
  const k = kindAliases[text.toLowerCase()] ?? (text in kinds ? text : undefined);
  if (!k) throw new EbmeshError('EBMESH_UNKNOWN_KIND', `unknown kind "${text}"`, { hint: `known: ${Object.keys(kinds).join(', ')}` });
  return k;
}

route('GET', '/v1/status', async (_r, node) => node.status());
// The node proxy's requests (issue 6): counters, recent events, Prometheus text.
route('GET', '/v1/proxy', async ({ url }, node) => ({
  status: await node.l7.status(),
  recent: node.l7.requests.recentEvents(Number(url.searchParams.get('limit') ?? 100)),
  metrics: node.l7.requests.metrics(),
}));

route('POST', '/v1/proxy/restart', async (_r, node) => node.l7.restart());

route('POST', '/v1/apply', async ({ body }, node) => {
  const { text, file } = body as { text: string; file?: string };
  const resources = parseResources(text, file);
  const results = await applyResources(node.store, resources, file);
  await node.reconcileNow();
  return { results };
});

route('POST', '/v1/delete', async ({ body }, node) => {
  const { text, file } = body as { text?: string; file?: string; refs?: Array<{ kind: string; namespace?: string; name: string }> };
  let resources: AnyResource[];
  if (text !== undefined) {
    resources = parseResources(text, file);
  } else {
    const refs = (body as { refs: Array<{ kind: string; namespace?: string; name: string }> }).refs;
    resources = refs.map((r) => ({ kind: resolveKind(r.kind), metadata: { name: r.name, namespace: r.namespace ?? 'default' } }) as AnyResource);
  }
  const results = await deleteResources(node.store, resources);
  await node.reconcileNow();
  return { results };
});

route('GET', '/v1/resources', async ({ url }, node) => {
  const kind = url.searchParams.get('kind');
  const ns = url.searchParams.get('namespace');
  const name = url.searchParams.get('name');
  const k = kind ? resolveKind(kind) : undefined;
  const snap = await readSnapshot(node.store);
  const entries = await node.store.list<AnyResource>(RESOURCES + (k ? `${k}/` : ''));
  const items = entries
    .map((e) => e.value)
    .filter((r) => (!ns || !namespaced.has(r.kind) || (r.metadata as { namespace?: string }).namespace === ns) && (!name || r.metadata.name === name))
    .map((r) => (r.kind === 'Workload' ? { ...r, status: snap.workloadStatus.get(wlKey(r)) } : r));
  if (name && items.length === 0) throw notFound(`${k ?? 'resource'} ${ns ? `${ns}/` : ''}${name}`);
  return { items };
});

route('GET', '/v1/workload', async ({ url }, node) => {
  const ref = url.searchParams.get('ref') ?? '';
  const snap = await readSnapshot(node.store);
  const [a, b] = ref.split('/');
  const matches = snap.workloads.filter((w) => (b === undefined ? w.metadata.name === a : w.metadata.namespace === a && w.metadata.name === b));
  if (matches.length === 0) throw notFound(`workload ${ref}`);
  if (matches.length > 1) {
    throw new EbmeshError('EBMESH_AMBIGUOUS', `workload name ${ref} is in several namespaces`, { hint: `say NAMESPACE/NAME: ${matches.map(wlKey).join(', ')}` });
  }
  const w = matches[0]!;
  return { workload: w, status: snap.workloadStatus.get(wlKey(w)) };
});

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  if (!chunks.length) return undefined;
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function errorBody(e: unknown): { error: Record<string, unknown> } {
  if (e instanceof ResourceError) return { error: { ...e.toJSON(), problems: e.problems } };
  if (e instanceof EbmeshError) return { error: e.toJSON() };
  return { error: { code: 'EBMESH_INTERNAL', message: (e as Error).message ?? String(e) } };
}

export function startApi(node: NodeDaemon, socketPath: string, extra?: (req: IncomingMessage, res: ServerResponse) => boolean): Promise<Server> {
  mkdirSync(dirname(socketPath), { recursive: true });
  rmSync(socketPath, { force: true });
  const server = createServer(async (req, res) => {
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    if (extra?.(req, res)) return;
    const url = new URL(req.url ?? '/', 'http://ebmesh');
    try {
      if (streams.get(`${req.method} ${url.pathname}`)?.({ url }, res, node)) return;
    } catch (e) {
      return send(res, e instanceof EbmeshError ? 400 : 500, errorBody(e));
    }
    const h = routes.get(`${req.method} ${url.pathname}`);
    if (!h) return send(res, 404, errorBody(notFound(`${req.method} ${url.pathname}`)));
    try {
      const body = await readBody(req);
      send(res, 200, await h({ url, body }, node));
    } catch (e) {
      send(res, e instanceof EbmeshError ? (e.code === 'EBMESH_NOT_FOUND' ? 404 : 400) : 500, errorBody(e));
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      chmodSync(socketPath, 0o600);
      resolve(server);
    });
  });
}
