/** Identity-based network policy, the pure half: model, compiler, verdict, explain. */
export {
  NetworkPolicy, type NetworkPolicyInput, type NetworkPolicyResource, type NetworkPolicyPeer, type NetworkPolicyPort, type IPBlock, type PolicyType,
} from '../resources/networkpolicy.js';
export {
  IDENTITY_ANY, IDENTITY_HOST, IDENTITY_WORLD, FIRST_ALLOCATED_IDENTITY, MAX_IDENTITY,
  allocateIdentities, buildIpCache, emptyIdentityTable, identityKey, IdentityIndex,
  type AllocateOptions, type IdentityEntry, type IdentityTable, type IpCacheEntry, type ReleasedIdentity,
} from './identity.js';
export {
  ALLOW_KEY_FIXED_BITS, CIDR_GROUP_BIT, CIDR_KEY_FIXED_BITS, DIRECTION_CODE, PROTO_CODE, portBlockEnd, portRangeToPrefixes,
  type AllowEntry, type CidrEntry, type CompiledTables, type CompiledWorkload, type Direction, type IpCacheRow, type IsolationEntry, type Proto,
} from './tables.js';
export { compilePolicies, type CompileInput } from './compile.js';
export { PolicyTables, type ResolvedEndpoint, type SideReason, type SideVerdict, type Verdict } from './verdict.js';
export { evaluateSpec, type SpecSide, type SpecVerdict } from './semantics.js';
export { explain, toEndpoint, type Decider, type ExplainOptions, type ExplainState, type Explanation, type ServiceResolver, type SideExplanation } from './explain.js';
export { checkNamedPorts, parseNetworkPolicy } from './validate.js';
export { NAMESPACE_NAME_LABEL, namespaceLabelsOf, policyWorldOf, type Endpoint, type Flow, type PolicyWorld } from './world.js';
