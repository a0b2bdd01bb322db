export { applyResources, deleteResources, nodePodSubnet, type ApplyResult } from './apply.js';
export { FrontendIndex, WorkloadIndex } from './frontend-index.js';
export { computeFrontends, frontendsOf, selectedWorkloads, resolveTargetPort, isReady, workloadIp, type DesiredFrontend, type DesiredBackend } from './lb.js';
export { portBackends, readyEndpointCount, type PortBackend } from './endpoints.js';
export { readSnapshot, storeKey, statusKey, wlKey, defaultMesh, RESOURCES, STATUS, type SliceEndpoint, type Snapshot, type WorkloadStatus, type WorkloadPhase } from './state.js';
export { validators, type CrossCheck, type FieldProblem } from './validators.js';
export { NODES, DEFAULT_NODE, nodeKey, validNodeName, workloadNode, nodeIndex, nodeSubnet, desiredFor, deltaFor, remoteView, type NodeRecord, type NodeDesired, type DesiredEntry } from './nodes.js';
export { l7Ports, l7Resources, computeProxyConfig, clientIdentities, type ClientIdentity, type L7Resources } from './l7.js';
