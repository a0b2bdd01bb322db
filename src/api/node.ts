/**
 * The node agent's own API, on the node's socket: what runs on this node
 * (flows, the node proxy, policy as the kernel holds it, identities). Every
 * node serves it; the embedded node daemon serves it beside the mesh API.
 */
import { z } from 'zod';
import type { Flow } from '../observe/flow.js';
import type { GoldenRow } from '../observe/golden.js';
import type { Explanation } from '../policy/index.js';
import type { ServiceMap } from '../observe/servicemap.js';
import type { Flow as MapFlow } from '../observe/servicemap-flow.js';
import type { HandoverReport } from '../agent/node-proxy/supervisor.js';
import type { ProxyStatus } from '../agent/node-proxy/wiring.js';
import type { RequestDoneEvent } from '../proxy/index.js';
import type { SvidInfo } from '../agent/identity.js';
import type { TunnelFlow } from '../tunnel/index.js';
import { defineRoute, defineStream, noInput } from './route.js';
import { NodeStatusSchema } from './status.js';

const isObject = (v: unknown) => typeof v === 'object' && v !== null;
const count = (dflt: number, max = 1_000_000) => z.coerce.number().int().min(0).max(max).default(dflt);

/** The filters of `ebmesh observe`, as query parameters. */
export const FlowQuery = z.object({
  from: z.string().optional(),
  to: z.string().optional(),
  namespace: z.string().optional(),
  verdict: z.string().optional(),
  protocol: z.string().optional(),
  status: z.string().optional(),
  type: z.string().optional(),
  reason: z.string().optional(),
  since: z.coerce.number().int().min(0).optional(),
});

const DropRow = z.object({
  time: z.string(),
  hook: z.string().optional(),
  reason: z.string().optional(),
  direction: z.enum(['ingress', 'egress']),
  proto: z.string(),
  src: z.string(),
  dst: z.string(),
  srcIdentity: z.number().optional(),
  dstIdentity: z.number().optional(),
  policy: z.string().optional(),
  rule: z.number().optional(),
});
export type DropRowOut = z.infer<typeof DropRow>;

export const nodeApi = {
  status: defineRoute({
    method: 'GET', path: '/v1/status', input: noInput.passthrough(), output: NodeStatusSchema,
    summary: 'this node: data path, maps, counters, node proxy, its workloads and services',
  }),
  shutdown: defineRoute({
    method: 'POST', path: '/v1/shutdown', input: z.object({ teardown: z.boolean().optional() }).strict(),
    output: z.object({ stopping: z.literal(true), teardown: z.boolean().optional() }),
    summary: 'stop the agent (the data path stays for the next one); with teardown, remove what it made',
  }),
  // Before `flows`: the server takes the first route of a path whose input fits, and only this one has follow=1.
  followFlows: defineStream({
    method: 'GET', path: '/v1/flows', input: FlowQuery.extend({ follow: z.literal('1'), last: count(0) }),
    // A reader that fell behind gets how many flows it missed in place of them.
    output: z.custom<Flow | { lost: number }>(isObject),
    summary: 'matching flows as they happen (newline-delimited JSON), the last N first',
  }),
  flows: defineRoute({
    method: 'GET', path: '/v1/flows', input: FlowQuery.extend({ last: count(20) }),
    output: z.object({ flows: z.array(z.custom<Flow>(isObject)), stats: z.record(z.number()) }),
    summary: 'the most recent flows that match the filters',
  }),
  top: defineRoute({
    method: 'GET', path: '/v1/top', input: z.object({ window: z.coerce.number().int().min(1).max(60).default(10) }),
    output: z.object({ window: z.number(), services: z.array(z.custom<GoldenRow>(isObject)) }),
    summary: 'golden metrics per service over the last WINDOW seconds',
  }),
  metrics: defineRoute({
    method: 'GET', path: '/v1/metrics', input: noInput.passthrough(),
    output: z.object({ text: z.string(), port: z.number() }),
    summary: 'the Prometheus exposition the metrics listener serves',
  }),
  servicemap: defineRoute({
    method: 'GET', path: '/v1/servicemap', input: z.object({ window: z.coerce.number().min(1).max(3600).default(60) }),
    output: z.custom<ServiceMap>(isObject),
    summary: 'who talks to whom, with golden metrics per edge',
  }),
  servicemapEdge: defineRoute({
    method: 'GET', path: '/v1/servicemap/edge',
    input: z.object({
      id: z.string().min(1, 'say which edge: ?id=SOURCE>TARGET'),
      window: z.coerce.number().min(1).max(3600).default(60),
      limit: z.coerce.number().int().min(1).max(500).default(50),
    }),
    output: z.object({ edge: z.string(), flows: z.array(z.custom<MapFlow>(isObject)) }),
    summary: 'the recent flows of one edge of the service map',
  }),
  policyExplain: defineRoute({
    method: 'GET', path: '/v1/policy/explain', input: z.object({ from: z.string().min(1), to: z.string().min(1) }),
    output: z.object({ explanations: z.array(z.custom<Explanation>(isObject)) }),
    summary: 'would FROM reach TO, and which policy and rule decide it, against the tables the kernel holds',
  }),
  policyDrops: defineRoute({
    method: 'GET', path: '/v1/policy/drops', input: noInput.passthrough(),
    output: z.object({ counts: z.record(z.number()), events: z.array(DropRow) }),
    summary: 'policy drops by reason, and the recent drop events',
  }),
  proxy: defineRoute({
    method: 'GET', path: '/v1/proxy', input: z.object({ limit: count(100, 10_000) }),
    output: z.object({
      status: z.custom<ProxyStatus>(isObject).optional(),
      recent: z.array(z.custom<RequestDoneEvent>(isObject)),
      metrics: z.string(),
    }),
    summary: 'the node proxy: its state, recent requests, counters by route',
  }),
  proxyRestart: defineRoute({
    method: 'POST', path: '/v1/proxy/restart', input: noInput, output: z.custom<HandoverReport>(isObject),
    summary: 'hand over to a new node proxy generation; the old one drains',
  }),
  tunnel: defineRoute({
    method: 'GET', path: '/v1/tunnel', input: noInput.passthrough(),
    output: z.object({ status: z.record(z.unknown()).optional(), recent: z.array(z.custom<TunnelFlow>(isObject)) }),
    summary: 'the node\'s mTLS tunnel endpoint and the streams it received last',
  }),
  identities: defineRoute({
    method: 'GET', path: '/v1/identities', input: noInput.passthrough(),
    output: z.object({ items: z.array(z.custom<SvidInfo>(isObject)) }),
    summary: 'the certificates (SVIDs) this node holds for its workloads and itself',
  }),
};
