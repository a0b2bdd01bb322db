/**
 * The schema of every resource ebmesh accepts: one place for each. Kinds
 * that Kubernetes defines keep its apiVersion and field names, so the same
 * YAML reads the same in both; ebmesh's own kinds live in ebmesh.io/v1alpha1.
 * Unknown fields are errors (`strict`), never silently dropped.
 */
import { z } from 'zod';
import { NetworkPolicy, type NetworkPolicyResource } from './networkpolicy.js';
import {
  cidr4, dnsLabel, ipv4Address, labels, labelSelector, metadata, portName, portNumber, protocol,
} from './schema-common.js';

const servicePort = z
  .object({
    // A DNS label, as Kubernetes has it for a Service's ports: the 15-character
    // IANA service name is what a container's port names (and so targetPort) are.
    name: dnsLabel.optional(),
    port: portNumber,
    targetPort: z.union([portNumber, portName]).optional(),
    protocol: protocol.default('TCP'),
    appProtocol: z.string().optional(),
  })
  .strict();

export const Service = z
  .object({
    apiVersion: z.literal('v1'),
    kind: z.literal('Service'),
    metadata,
    spec: z
      .object({
        type: z.literal('ClusterIP', { errorMap: () => ({ message: 'only type ClusterIP is supported' }) }).default('ClusterIP'),
        clusterIP: ipv4Address.optional(),
        ports: z.array(servicePort).min(1, 'a Service needs at least one port'),
        selector: labels.optional(),
        sessionAffinity: z.enum(['None', 'ClientIP']).default('None'),
        sessionAffinityConfig: z
          .object({
            clientIP: z.object({ timeoutSeconds: z.number().int().min(1).max(86400).default(10800) }).strict(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .superRefine((spec, ctx) => {
        const seen = new Set<string>();
        spec.ports.forEach((p, i) => {
          const key = `${p.port}/${p.protocol}`;
          if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['ports', i, 'port'], message: `port ${key} is listed twice` });
          seen.add(key);
          if (spec.ports.length > 1 && !p.name) ctx.addIssue({ code: 'custom', path: ['ports', i, 'name'], message: 'ports of a multi-port Service must be named' });
        });
      }),
  })
  .strict();

const workloadPort = z
  .object({
    name: portName.optional(),
    containerPort: portNumber,
    protocol: protocol.default('TCP'),
  })
  .strict();

/** A Workload's spec fields, before the checks that relate them (Workload below; a node's view of another node's workload in controlplane/nodes.ts). */
export const workloadSpecFields = z
  .object({
    serviceAccount: dnsLabel.default('default'),
    node: z.string().optional(),
    ip: ipv4Address.optional(),
    ports: z.array(workloadPort).default([]),
    /** For the lab: the process to run, Kubernetes-style $(VAR) expansion. */
    command: z.array(z.string()).min(1).optional(),
    env: z.record(z.string()).optional(),
    /** Files written into the workload's directory before it starts. */
    files: z.record(z.string().regex(/^[A-Za-z0-9._-]+$/, 'must be a plain file name'), z.string()).optional(),
    /** An existing process group to adopt instead of starting one. */
    adopt: z
      .object({
        cgroup: z.string().min(1),
        netns: z.string().optional(),
      })
      .strict()
      .optional(),
    /**
     * An endpoint whose processes the mesh neither runs nor attaches to
     * (they are on a host or in a runtime the mesh does not manage): it
     * only gives its ip to Services. Ready once declared.
     */
    external: z.boolean().optional(),
  })
  .strict();

export const Workload = z
  .object({
    apiVersion: z.literal('ebmesh.io/v1alpha1'),
    kind: z.literal('Workload'),
    metadata,
    spec: workloadSpecFields
      .superRefine((spec, ctx) => {
        if (spec.external && (spec.command || spec.adopt)) ctx.addIssue({ code: 'custom', path: ['external'], message: 'an external Workload neither runs a command nor adopts a cgroup' });
        if (spec.external && !spec.ip) ctx.addIssue({ code: 'custom', path: ['ip'], message: 'an external Workload needs its ip' });
        if (spec.external) return;
        if (spec.command && spec.adopt) ctx.addIssue({ code: 'custom', path: ['adopt'], message: 'a Workload either runs a command or adopts a cgroup, not both' });
        if (!spec.command && !spec.adopt) ctx.addIssue({ code: 'custom', path: ['command'], message: 'a Workload needs a command (lab) or adopt (an existing cgroup)' });
        if (spec.adopt && !spec.ip) ctx.addIssue({ code: 'custom', path: ['ip'], message: 'an adopted Workload needs its ip' });
        const names = new Set<string>();
        spec.ports.forEach((p, i) => {
          if (p.name && names.has(p.name)) ctx.addIssue({ code: 'custom', path: ['ports', i, 'name'], message: `port name ${p.name} is used twice` });
          if (p.name) names.add(p.name);
        });
      }),
  })
  .strict();

export const Namespace = z
  .object({
    apiVersion: z.literal('v1'),
    kind: z.literal('Namespace'),
    metadata: z.object({ name: dnsLabel, labels: labels.optional(), annotations: z.record(z.string()).optional() }).strict(),
    spec: z.object({}).strict().optional(),
  })
  .strict();

export const MeshConfig = z
  .object({
    apiVersion: z.literal('ebmesh.io/v1alpha1'),
    kind: z.literal('MeshConfig'),
    metadata: z.object({ name: z.literal('mesh', { errorMap: () => ({ message: 'the MeshConfig is named "mesh"' }) }) }).strict(),
    spec: z
      .object({
        serviceCIDR: cidr4.default('10.96.0.0/16'),
        podCIDR: cidr4.default('10.244.0.0/16'),
        trustDomain: z.string().regex(/^[a-z0-9.-]+$/).default('cluster.local'),
        /** Node proxy limits for the whole node (issue 6); divided among its workers. */
        proxy: z
          .object({
            maxConcurrentRequests: z.number().int().min(1).max(1_000_000).optional(),
            maxConcurrentPerNamespace: z.number().int().min(1).max(1_000_000).optional(),
            maxQueuedPerNamespace: z.number().int().min(0).max(1_000_000).optional(),
            queueTimeoutMs: z.number().int().min(1).max(600_000).optional(),
            /** A replaced node proxy's time to let its long-lived connections end (handover); then they are cut. */
            drainTimeoutMs: z.number().int().min(0).max(3_600_000).optional(),
          })
          .strict()
          .optional(),
        /** Same-node socket shortcut (sockmap): on by default, per node. */
        sameNodeShortcut: z.boolean().default(true),
        /** Kernel map sizes (src/agent/map-sizes.ts). */
        datapath: z
          .object({
            /** Connections a node tracks at once (the preallocated per-connection maps); default 65,536. */
            connections: z.number().int().min(1024).max(4_194_304).optional(),
          })
          .strict()
          .optional(),
      })
      .strict(),
  })
  .strict();

export { labelSelector };

// L7 kinds (issue 6): their schemas live with the proxy's resources.
import { HTTPRoute, GRPCRoute, type HTTPRouteResource, type GRPCRouteResource } from './gateway.js';
import { TrafficPolicy, AuthorizationPolicy, type TrafficPolicyResource, type AuthorizationPolicyResource } from './traffic.js';
export type { HTTPRouteResource, GRPCRouteResource, TrafficPolicyResource, AuthorizationPolicyResource };

export type ServiceResource = z.infer<typeof Service>;
export type WorkloadResource = z.infer<typeof Workload>;
export type NamespaceResource = z.infer<typeof Namespace>;
export type MeshConfigResource = z.infer<typeof MeshConfig>;

/** Every kind, by name. Later kinds register here and nowhere else. */
export const kinds = {
  Service,
  Workload,
  Namespace,
  MeshConfig,
  HTTPRoute,
  GRPCRoute,
  TrafficPolicy,
  AuthorizationPolicy,
  NetworkPolicy,
} as const;

export type KindName = keyof typeof kinds;
export type AnyResource = ServiceResource | WorkloadResource | NamespaceResource | MeshConfigResource | NetworkPolicyResource
  | HTTPRouteResource | GRPCRouteResource | TrafficPolicyResource | AuthorizationPolicyResource;

/** Whether `kind` names one of ebmesh's kinds (own keys only: "__proto__" or "constructor" name none). */
export function isKindName(kind: string): kind is KindName {
  return Object.hasOwn(kinds, kind);
}

/** Kinds whose objects live in a namespace. */
export const namespaced: ReadonlySet<string> = new Set(['Service', 'Workload', 'NetworkPolicy',
  'HTTPRoute', 'GRPCRoute', 'TrafficPolicy', 'AuthorizationPolicy']);

/** Short names the CLI accepts, kubectl-style. */
export const kindAliases: Record<string, KindName> = {
  service: 'Service', services: 'Service', svc: 'Service',
  workload: 'Workload', workloads: 'Workload', wl: 'Workload',
  namespace: 'Namespace', namespaces: 'Namespace', ns: 'Namespace',
  meshconfig: 'MeshConfig',
  httproute: 'HTTPRoute', httproutes: 'HTTPRoute',
  grpcroute: 'GRPCRoute', grpcroutes: 'GRPCRoute',
  trafficpolicy: 'TrafficPolicy', trafficpolicies: 'TrafficPolicy',
  authorizationpolicy: 'AuthorizationPolicy', authorizationpolicies: 'AuthorizationPolicy',
  networkpolicy: 'NetworkPolicy', networkpolicies: 'NetworkPolicy', netpol: 'NetworkPolicy',
};

/** The kind a CLI word names (a kind's name or one of its short names), if any. */
export function kindOfWord(word: string): KindName | undefined {
  const alias = word.toLowerCase();
  if (Object.hasOwn(kindAliases, alias)) return kindAliases[alias];
  return isKindName(word) ? word : undefined;
}
