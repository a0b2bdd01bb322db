/**
 * Service-map endpoints of the node API. They add aggregation, not data:
 * the flows come from GET /v1/flows (called in-process through its
 * registered handler, so this module needs nothing of how observe stores
 * them) and the nodes from the store.
 *
 *   GET /v1/servicemap?window=SECONDS            the graph with golden metrics
 *   GET /v1/servicemap/edge?id=EDGE&limit=N      the recent flows of one edge
 */
import { EbmeshError } from '../errors.js';
import { isReady, readSnapshot, workloadIp, type Snapshot } from '../controlplane/index.js';
import { route, routeHandler } from '../api/server.js';
import type { NodeDaemon } from '../agent/node-agent.js';
import { flowsOf, type Flow } from './flow.js';
import { buildServiceMap, edgeFlows, type MapInput } from './servicemap.js';

/** How many flows the map asks for: enough for a busy minute on a lab node, bounded so a map stays cheap. */
const FLOW_LIMIT = 20_000;
const DEFAULT_WINDOW = 60;

function windowOf(url: URL): number {
  const w = Number(url.searchParams.get('window') ?? DEFAULT_WINDOW);
  if (!Number.isFinite(w) || w < 1 || w > 3600) {
    throw new EbmeshError('EBMESH_BAD_REQUEST', `window must be 1..3600 seconds, not "${url.searchParams.get('window')}"`);
  }
  return w;
}

async function recentFlows(node: NodeDaemon): Promise<Flow[] | undefined> {
  const h = routeHandler('GET', '/v1/flows');
  if (!h) return undefined;
  return flowsOf(await h({ url: new URL(`http://ebmesh/v1/flows?last=${FLOW_LIMIT}`), body: undefined }, node));
}

export function mapInput(snap: Snapshot, flows: Flow[] | undefined, windowSeconds: number, now = Date.now()): MapInput {
  return {
    now,
    windowSeconds,
    flows,
    trustDomain: snap.mesh.spec.trustDomain,
    workloads: snap.workloads.map((w) => ({
      namespace: w.metadata.namespace,
      name: w.metadata.name,
      labels: w.metadata.labels,
      serviceAccount: w.spec.serviceAccount,
      ip: workloadIp(snap, w),
      phase: w.spec.adopt ? 'Adopted' : snap.workloadStatus.get(`${w.metadata.namespace}/${w.metadata.name}`)?.phase ?? 'Pending',
      ready: isReady(snap, w),
    })),
    services: snap.services.map((s) => ({
      namespace: s.metadata.namespace,
      name: s.metadata.name,
      clusterIP: s.spec.clusterIP,
      selector: s.spec.selector,
      ports: s.spec.ports.map((p) => `${p.name ? `${p.name} ` : ''}${p.port}/${p.protocol}`),
    })),
    others: [...snap.others.values()].flat() as MapInput['others'],
  };
}

route('GET', '/v1/servicemap', async ({ url }, node) => {
  const win = windowOf(url);
  const [snap, flows] = await Promise.all([readSnapshot(node.store), recentFlows(node)]);
  return buildServiceMap(mapInput(snap, flows, win));
});

route('GET', '/v1/servicemap/edge', async ({ url }, node) => {
  const id = url.searchParams.get('id');
  if (!id) throw new EbmeshError('EBMESH_BAD_REQUEST', 'say which edge: ?id=SOURCE>TARGET');
  const limit = Math.min(500, Math.max(1, Number(url.searchParams.get('limit') ?? 50) || 50));
  const win = windowOf(url);
  const [snap, flows] = await Promise.all([readSnapshot(node.store), recentFlows(node)]);
  if (!flows) throw new EbmeshError('EBMESH_NO_FLOWS', 'this agent has no flow source (GET /v1/flows)', { hint: 'flows come with the observe part' });
  return { edge: id, flows: edgeFlows(mapInput(snap, flows, win), id, limit) };
});
