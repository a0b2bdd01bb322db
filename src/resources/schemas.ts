/**
 * The schema of every resource ebmesh accepts: one place for each. Kinds
 * that Kubernetes defines keep its apiVersion and field names, so the same
 * YAML reads the same in both; ebmesh's own kinds live in ebmesh.io/v1alpha1.
 * Unknown fields are errors (`strict`), never silently dropped.
 */
import { z } from 'zod';
import { NetworkPolicy, type NetworkPolicyResource } from './networkpolicy.js';
import {
  cidr4, cidr6, dnsLabel, ipAddress, ipv4Address, ipv6Address, labels, labelSelector, metadata, portName, portNumber, protocol,
} from './schema-common.js';
import { cidrContains, parseCidr, parseIp } from './ip.js';

const servicePort = z
  .object({
    // A DNS label, as Kubernetes has it for a Service's ports: the 15-character
    // IANA service name is what a container's port names (and so targetPort) are.
    name: dnsLabel.optional(),
    port: portNumber,
    targetPort: z.union([portNumber, portName]).optional(),
    protocol: protocol.default('TCP'),
    appProtocol: z.string().optional(),
    /** The port every node serves the Service on (type NodePort or LoadBalancer), as the API server allocated it. */
    nodePort: portNumber.optional(),
  })
  .strict();

/** Kubernetes' names of the address families. */
export const IP_FAMILIES = ['IPv4', 'IPv6'] as const;
export type IpFamilyName = (typeof IP_FAMILIES)[number];
const ipFamily = z.enum(IP_FAMILIES, { errorMap: () => ({ message: 'must be IPv4 or IPv6' }) });
export const familyName = (f: 4 | 6): IpFamilyName => (f === 4 ? 'IPv4' : 'IPv6');

export const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer'] as const;

export const Service = z
  .object({
    apiVersion: z.literal('v1'),
    kind: z.literal('Service'),
    metadata,
    spec: z
      .object({
        /** NodePort and LoadBalancer Services are also served at a node port on every node's addresses. */
        type: z.enum(SERVICE_TYPES, { errorMap: () => ({ message: 'must be ClusterIP, NodePort or LoadBalancer' }) }).default('ClusterIP'),
        /** The primary VIP: clusterIPs[0]. */
        clusterIP: ipAddress.optional(),
        /** A VIP per family, primary first (filled in by apply, as Kubernetes does). */
        clusterIPs: z.array(ipAddress).min(1).max(2, 'a Service has at most one VIP per family (2)').optional(),
        /** Which families the Service is reached on, primary first (filled in by apply). */
        ipFamilies: z.array(ipFamily).min(1).max(2, 'at most two families, IPv4 and IPv6').optional(),
        /** SingleStack (the default), PreferDualStack (both where the mesh has both), RequireDualStack. */
        ipFamilyPolicy: z.enum(['SingleStack', 'PreferDualStack', 'RequireDualStack'], {
          errorMap: () => ({ message: 'must be SingleStack, PreferDualStack or RequireDualStack' }),
        }).optional(),
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
        // What can be told from the Service alone; what needs the mesh's ranges is apply's (controlplane/service-ips.ts).
        const fams = spec.ipFamilies ?? [];
        if (fams.length === 2 && fams[0] === fams[1]) ctx.addIssue({ code: 'custom', path: ['ipFamilies', 1], message: `${fams[1]} is listed twice` });
        const ips = spec.clusterIPs ?? [];
        const ipFams = ips.map((ip) => (parseIp(ip)?.family === 6 ? 'IPv6' : 'IPv4'));
        if (ips.length === 2 && ipFams[0] === ipFams[1]) ctx.addIssue({ code: 'custom', path: ['clusterIPs', 1], message: `two ${ipFams[0]} addresses: a Service has one VIP per family` });
        if (spec.clusterIP !== undefined && ips.length && ips[0] !== spec.clusterIP) {
          ctx.addIssue({ code: 'custom', path: ['clusterIP'], message: `must be clusterIPs[0] (${ips[0]})` });
        }
        ipFams.forEach((f, i) => {
          if (fams[i] !== undefined && fams[i] !== f) ctx.addIssue({ code: 'custom', path: ['clusterIPs', i], message: `${ips[i]} is ${f}, but ipFamilies[${i}] is ${fams[i]}` });
        });
        if (spec.ipFamilyPolicy === 'SingleStack' && (fams.length > 1 || ips.length > 1)) {
          ctx.addIssue({ code: 'custom', path: ['ipFamilyPolicy'], message: 'SingleStack allows one family: use PreferDualStack or RequireDualStack for two' });
        }
        const seen = new Set<string>();
        spec.ports.forEach((p, i) => {
          const key = `${p.port}/${p.protocol}`;
          if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['ports', i, 'port'], message: `port ${key} is listed twice` });
          seen.add(key);
          if (spec.ports.length > 1 && !p.name) ctx.addIssue({ code: 'custom', path: ['ports', i, 'name'], message: 'ports of a multi-port Service must be named' });
          if (p.nodePort !== undefined && spec.type === 'ClusterIP') ctx.addIssue({ code: 'custom', path: ['ports', i, 'nodePort'], message: 'a node port needs type NodePort or LoadBalancer' });
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
    /** Its IPv6 address, beside `ip`: lab workloads get one when the mesh is dual-stack. */
    ipv6: ipv6Address.optional(),
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
        /**
         * IPv6 ranges, both or neither: with them the mesh is dual-stack (each
         * lab workload gets an IPv6 address beside its IPv4 one, Services may
         * have IPv6 VIPs). Pick ULA ranges (fd00::/8) that nothing on the
         * hosts uses; each node takes a /64 of the pod range.
         */
        serviceCIDRv6: cidr6.optional(),
        podCIDRv6: cidr6.optional(),
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
      .strict()
      .superRefine((spec, ctx) => {
        const v6 = { serviceCIDRv6: spec.serviceCIDRv6, podCIDRv6: spec.podCIDRv6 };
        if ((v6.serviceCIDRv6 === undefined) !== (v6.podCIDRv6 === undefined)) {
          const missing = v6.serviceCIDRv6 === undefined ? 'serviceCIDRv6' : 'podCIDRv6';
          ctx.addIssue({ code: 'custom', path: [missing], message: 'serviceCIDRv6 and podCIDRv6 go together: a dual-stack mesh needs both' });
          return;
        }
        const svc = v6.serviceCIDRv6 === undefined ? undefined : parseCidr(v6.serviceCIDRv6);
        const pod = v6.podCIDRv6 === undefined ? undefined : parseCidr(v6.podCIDRv6);
        if (!svc || !pod) return;
        // At least 256 addresses each; a node's pod subnet is a /64 of the pod range (or all of a smaller one).
        if (svc.len > 120) ctx.addIssue({ code: 'custom', path: ['serviceCIDRv6'], message: 'must be /120 or larger (at least 256 addresses)' });
        if (pod.len > 120) ctx.addIssue({ code: 'custom', path: ['podCIDRv6'], message: 'must be /120 or larger (at least 256 addresses)' });
        if (cidrContains(svc, pod) || cidrContains(pod, svc)) {
          ctx.addIssue({ code: 'custom', path: ['podCIDRv6'], message: `overlaps serviceCIDRv6 ${v6.serviceCIDRv6}` });
        }
      }),
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
