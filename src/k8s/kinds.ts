/**
 * The collections ebmesh reads from a Kubernetes API server, and the shapes
 * of the few fields it uses (the API server validated the rest).
 */
import type { KubeObject } from './client.js';

export const COLLECTIONS = {
  namespaces: { path: '/api/v1/namespaces' },
  nodes: { path: '/api/v1/nodes' },
  pods: { path: '/api/v1/pods' },
  services: { path: '/api/v1/services' },
  endpointSlices: { path: '/apis/discovery.k8s.io/v1/endpointslices' },
  networkPolicies: { path: '/apis/networking.k8s.io/v1/networkpolicies' },
  httpRoutes: { path: '/apis/gateway.networking.k8s.io/v1/httproutes', optional: true },
  grpcRoutes: { path: '/apis/gateway.networking.k8s.io/v1/grpcroutes', optional: true },
  trafficPolicies: { path: '/apis/ebmesh.io/v1alpha1/trafficpolicies', optional: true },
  authorizationPolicies: { path: '/apis/ebmesh.io/v1alpha1/authorizationpolicies', optional: true },
  meshConfigs: { path: '/apis/ebmesh.io/v1alpha1/meshconfigs', optional: true },
} as const;

export type CollectionName = keyof typeof COLLECTIONS;

/** A Service's label naming the proxy that serves it: set, and not to ours, it is someone else's to serve. */
export const SERVICE_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
/** An EndpointSlice's label naming its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** On a Namespace or a Pod: "disabled" keeps it out of the mesh (its sockets get no program; it still backs Services). */
export const MESH_OPT_OUT = 'ebmesh.io/mesh';

export interface K8sNamespace extends KubeObject {}

export interface K8sNode extends KubeObject {
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { addresses?: Array<{ type: string; address: string }> };
}

export interface K8sContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}

export interface K8sPod extends KubeObject {
  spec: {
    nodeName?: string;
    serviceAccountName?: string;
    hostNetwork?: boolean;
    containers: Array<{ name: string; ports?: K8sContainerPort[] }>;
    initContainers?: Array<{ name: string; ports?: K8sContainerPort[] }>;
  };
  status?: {
    phase?: string;
    podIP?: string;
    podIPs?: Array<{ ip: string }>;
    qosClass?: 'Guaranteed' | 'Burstable' | 'BestEffort';
    conditions?: Array<{ type: string; status: string }>;
  };
}

export interface K8sServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
  nodePort?: number;
}

export interface K8sService extends KubeObject {
  spec: {
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    ipFamilies?: string[];
    ipFamilyPolicy?: string;
    ports?: K8sServicePort[];
    selector?: Record<string, string>;
    sessionAffinity?: string;
    sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
  };
}

export interface K8sEndpointSlice extends KubeObject {
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints?: Array<{
    addresses: string[];
    conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
    targetRef?: { kind?: string; name?: string; namespace?: string };
    nodeName?: string;
  }>;
  ports?: Array<{ name?: string; port?: number; protocol?: string }>;
}
