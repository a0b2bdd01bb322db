/**
 * The node API as this agent serves it (src/api/node.ts declares it):
 * every handler reads what the agent holds; none changes desired state.
 */
import { EbmeshError } from '../errors.js';
import type { Handlers } from '../api/server.js';
import type { nodeApi } from '../api/node.js';
import type { FlowFilter } from '../observe/flow.js';
import type { Observer } from '../observe/observer.js';
import { flowsOf } from '../observe/servicemap-flow.js';
import { buildServiceMap, edgeFlows } from '../observe/servicemap.js';
import { mapInput } from '../observe/servicemap-input.js';
import { DROPS_FILTER, DROPS_LIMIT, dropRow, explainFlow } from '../policy/explain-flow.js';
import type { SvidInfo } from './identity.js';
import type { NodeAgent } from './node-agent.js';

/** How many flows the service map reads: enough for a busy minute on a lab node, bounded so a map stays cheap. */
const MAP_FLOW_LIMIT = 20_000;

/** What differs per process: how it stops, and what it knows of identities. */
export interface NodeRouteHooks {
  shutdown(teardown: boolean): void;
  identities?: () => SvidInfo[];
}

function observerOf(agent: NodeAgent): Observer {
  if (!agent.observer) throw new EbmeshError('EBMESH_OBSERVE_OFF', 'flow observation is not running on this node', { hint: 'see the agent log' });
  return agent.observer;
}

function filterOf(q: FlowFilter): FlowFilter {
  const f: FlowFilter = {};
  for (const [k, v] of Object.entries(q) as Array<[keyof FlowFilter, string | number | undefined]>) {
    if (v !== undefined && v !== '') (f as Record<string, unknown>)[k] = v;
  }
  return f;
}

export function nodeHandlers(agent: NodeAgent, hooks: NodeRouteHooks): Handlers<typeof nodeApi> {
  const recentFlows = () => agent.observer?.flows({}, MAP_FLOW_LIMIT);
  return {
    status: () => agent.status(),
    shutdown: async ({ teardown }) => {
      setImmediate(() => hooks.shutdown(teardown === true));
      return { stopping: true, ...(teardown !== undefined ? { teardown } : {}) };
    },
    followFlows: ({ last, follow: _follow, ...filter }, res) => observerOf(agent).follow(res, filterOf(filter), last),
    flows: async ({ last, ...filter }) => {
      const o = observerOf(agent);
      return { flows: o.flows(filterOf(filter), last), stats: o.stats() };
    },
    top: async ({ window }) => ({ window, services: observerOf(agent).top(window) }),
    metrics: async () => {
      const o = observerOf(agent);
      return { text: await o.scrape(), port: o.metricsPort };
    },
    servicemap: async ({ window }) => {
      const snap = await agent.source.snapshot();
      const flows = recentFlows();
      return buildServiceMap(mapInput(snap, flows ? flowsOf({ flows }) : undefined, window));
    },
    servicemapEdge: async ({ id, window, limit }) => {
      const snap = await agent.source.snapshot();
      const flows = recentFlows();
      if (!flows) throw new EbmeshError('EBMESH_OBSERVE_OFF', 'flow observation is not running on this node: the map has no edges', { hint: 'see the agent log' });
      return { edge: id, flows: edgeFlows(mapInput(snap, flowsOf({ flows }), window), id, limit) };
    },
    policyExplain: async ({ from, to }) => {
      await agent.reconcileNow(); // so the answer is about what the kernel holds now
      return explainFlow(agent.policy, await agent.source.snapshot(), from, to);
    },
    policyDrops: async () => ({
      counts: agent.datapath.policy.dropCounts(),
      events: (agent.observer?.flows(DROPS_FILTER, DROPS_LIMIT) ?? []).map(dropRow),
    }),
    proxy: async ({ limit }) => {
      const status = await agent.l7.status();
      return {
        ...(status ? { status } : {}),
        recent: agent.l7.requests.recentEvents(limit),
        metrics: agent.l7.requests.metrics(),
      };
    },
    proxyRestart: () => agent.l7.restart(),
    tunnel: async () => {
      const status = (await agent.l7.stats())?.tunnel;
      return { ...(status ? { status } : {}), recent: agent.l7.recentTunnel };
    },
    identities: async () => ({ items: hooks.identities?.() ?? [] }),
  };
}
