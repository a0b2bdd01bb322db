export { applyResources, deleteResources, nodePodSubnet, nodePodSubnet6, type ApplyResult } from './apply.js';
export { FrontendIndex, WorkloadIndex } from './frontend-index.js';
export { computeFrontends, frontendsOf, selectedWorkloads, resolveTargetPort, isReady, workloadIp, type DesiredFrontend, type DesiredBackend } from './lb.js';
export { portBackends, readyEndpointCount, workloadIpv6, workloadAddresses, workloadAddressOf, serviceVips, type PortBackend } from './endpoints.js';
export { meshFamilies, serviceFamilies } from './service-ips.js';
export { readSnapshot, storeKey, statusKey, wlKey, defaultMesh, RESOURCES, STATUS, type SliceEndpoint, type Snapshot, type WorkloadStatus, type WorkloadPhase } from './state.js';
export { validators, type CrossCheck, type FieldProblem } from './validators.js';
export { NODES, DEFAULT_NODE, meshRanges, nodeKey, validNodeName, workloadNode, nodeIndex, nodeSubnet, desiredFor, deltaFor, remoteView, type NodeRecord, type NodeDesired, type DesiredEntry } from './nodes.js';
export { l7Ports, l7Resources, computeProxyConfig, clientIdentities, type ClientIdentity, type L7Resources } from './l7.js';
