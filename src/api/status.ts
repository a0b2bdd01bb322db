/**
 * What `GET /v1/status` answers: a node's status or, on a mesh that spans
 * nodes, the control plane's. One declaration each; the producers return
 * these types and every reader (CLI, UI, bench, tests) parses them here.
 */
import { z } from 'zod';
import type { MeshConfigResource } from '../resources/index.js';
import type { ProxyStatus } from '../agent/node-proxy/wiring.js';

const Mesh = z.custom<MeshConfigResource['spec']>((v) => typeof v === 'object' && v !== null);

const ServiceRow = z.object({
  name: z.string(),
  namespace: z.string(),
  clusterIP: z.string().optional(),
  /** A dual-stack Service's VIPs, one per family (absent: clusterIP is its only one). */
  clusterIPs: z.array(z.string()).optional(),
  ports: z.array(z.string()),
  endpoints: z.number(),
});

/** Stored entries the snapshot left out because they failed their check (controlplane/stored.ts). */
const Rejected = z.array(z.object({ key: z.string(), problem: z.string() }));

const Reconcile = z.object({
  revision: z.number(),
  at: z.string(),
  lbOps: z.number(),
  policyOps: z.number().optional(),
  error: z.string().optional(),
});

/** A node's certificates from its control plane: the node certificate and the SVIDs it holds (agent/kubernetes-identity.ts). */
const NodeIdentity = z.object({
  controlPlane: z.string(),
  nodeCertExpiry: z.string().optional(),
  error: z.string().optional(),
  svids: z.array(z.object({ workload: z.string(), spiffeId: z.string(), notAfter: z.string(), renewals: z.number() })),
});
export type NodeIdentityStatus = z.infer<typeof NodeIdentity>;

export const NodeStatusSchema = z.object({
  role: z.literal('node'),
  instance: z.string(),
  node: z.string(),
  /** Where the desired state comes from: the embedded store, a control plane, a Kubernetes API server. */
  source: z.string(),
  pid: z.number(),
  startedAt: z.string(),
  revision: z.number(),
  lastReconcile: Reconcile.optional(),
  rejected: Rejected.optional(),
  memory: z.object({ rss: z.number(), heapUsed: z.number(), heapTotal: z.number(), external: z.number() }),
  mesh: Mesh,
  proxy: z.custom<ProxyStatus>((v) => typeof v === 'object' && v !== null).optional(),
  datapath: z.object({
    attached: z.array(z.string()),
    counters: z.record(z.number()),
    drops: z.record(z.number()),
    maps: z.array(z.object({ map: z.string(), entries: z.number(), max: z.number() })),
  }),
  observe: z.record(z.number()).optional(),
  identity: NodeIdentity.optional(),
  workloads: z.array(z.object({
    name: z.string(),
    namespace: z.string(),
    ip: z.string().optional(),
    ipv6: z.string().optional(),
    phase: z.string(),
    ready: z.boolean(),
    pid: z.number().optional(),
    message: z.string().optional(),
  })),
  services: z.array(ServiceRow),
});
export type NodeStatus = z.infer<typeof NodeStatusSchema>;

export const ClusterStatusSchema = z.object({
  role: z.literal('controlplane'),
  instance: z.string(),
  pid: z.number(),
  startedAt: z.string(),
  store: z.string(),
  /** A replicated store's members (etcd): which answer now. */
  storeMembers: z.array(z.object({ endpoint: z.string(), healthy: z.boolean(), error: z.string().optional() })).optional(),
  revision: z.number(),
  mesh: Mesh,
  rejected: Rejected.optional(),
  ca: z.object({ notAfter: z.string(), svidTtlSeconds: z.number() }),
  nodes: z.array(z.object({
    name: z.string(),
    index: z.number(),
    podSubnet: z.string(),
    healthy: z.boolean(),
    lastHeartbeat: z.string().optional(),
    heartbeatAgeSeconds: z.number().optional(),
    appliedRevision: z.number().optional(),
    lastReconcileError: z.string().optional(),
    identityError: z.string().optional(),
    certs: z.number(),
    earliestCertExpiry: z.string().optional(),
    tunnel: z.record(z.unknown()).optional(),
    workloads: z.number(),
  })),
  workloads: z.array(z.object({
    name: z.string(),
    namespace: z.string(),
    node: z.string(),
    ip: z.string().optional(),
    phase: z.string(),
    ready: z.boolean(),
    message: z.string().optional(),
    identity: z.string(),
  })),
  services: z.array(ServiceRow),
});
export type ClusterStatus = z.infer<typeof ClusterStatusSchema>;

export const StatusSchema = z.discriminatedUnion('role', [NodeStatusSchema, ClusterStatusSchema]);
export type Status = z.infer<typeof StatusSchema>;
