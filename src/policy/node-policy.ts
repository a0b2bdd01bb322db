/**
 * What one node's policy maps must hold, decided purely: identities (the
 * previous allocation kept, new label sets allocated), the compiled tables,
 * and the node's endpoint cgroups with their identities. PolicyAgent
 * (policy-agent.ts) writes it; src/agent/plan.ts decides it per pass.
 */
import { allocateIdentities, compilePolicies, IdentityIndex, type CompiledTables, type IdentityTable, type PolicyWorld } from './index.js';

/** A workload cgroup of this node with the identity its traffic is judged as. */
export interface PlannedEndpoint {
  workload: string;
  cgroup: string;
  identity: number;
  ip?: string;
  ipv6?: string;
}

/** What a node's policy maps must hold, as decided from one snapshot. */
export interface PolicyPlan {
  world: PolicyWorld;
  identities: IdentityTable;
  tables: CompiledTables;
  endpoints: PlannedEndpoint[];
  hostIps: string[];
}

/** The last compile, reused while its input is the same (the same answer, faster). */
export interface CompileMemo {
  input: string;
  tables: CompiledTables;
}

export interface PolicyInput {
  world: PolicyWorld;
  /** The allocation so far. */
  identities: IdentityTable;
  /** The node's own addresses (judged as the host identity). */
  hostIps: string[];
  /** This node's endpoints, given the identities of this plan. */
  endpoints: (identities: IdentityIndex) => PlannedEndpoint[];
}

export function decidePolicy(input: PolicyInput, memo?: { policy?: CompileMemo }): PolicyPlan {
  const { world, hostIps } = input;
  const identities = allocateIdentities(input.identities, world.workloads);
  const key = JSON.stringify([world.policies, world.namespaces, world.workloads.map((w) => [w.metadata, w.spec.ip, w.spec.ipv6, w.spec.ports]), identities.entries, hostIps]);
  const tables = memo?.policy?.input === key ? memo.policy.tables : compilePolicies({ ...world, identities, hostIps });
  if (memo) memo.policy = { input: key, tables };
  return { world, identities, tables, endpoints: input.endpoints(new IdentityIndex(identities)), hostIps };
}
