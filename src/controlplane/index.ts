export { applyResources, deleteResources, nodePodSubnet, type ApplyResult } from './apply.js';
export { computeFrontends, selectedWorkloads, resolveTargetPort, isReady, workloadIp, type DesiredFrontend, type DesiredBackend } from './lb.js';
export { readSnapshot, storeKey, statusKey, wlKey, defaultMesh, RESOURCES, STATUS, type Snapshot, type WorkloadStatus, type WorkloadPhase } from './state.js';
export { validators, type CrossCheck, type FieldProblem } from './validators.js';
export { policiesOf, policyWorld } from './policy.js';
