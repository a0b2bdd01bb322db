/**
 * The agent's half of network policy: from a snapshot, the identities
 * (allocated by the pure allocator, persisted so that ids survive restarts),
 * the compiled tables, and this node's endpoints (workload cgroups); then
 * the diff to the kernel maps, applied in order (policy-plan.ts).
 *
 * The agent decides nothing about policy itself: the compiler does, and the
 * tables it keeps are what explain and the drop events are read against.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import {
  IdentityIndex, allocateIdentities, compilePolicies, emptyIdentityTable, type CompiledTables, type IdentityTable, type PolicyWorld,
} from './index.js';
import type { WorkloadResource } from '../resources/index.js';
import type { PolicyMaps } from './policy-maps.js';
import {
  applyToContents, encodeEndpoint, encodePolicy, planPolicy, type EndpointRow, type PolicyMapContents,
} from './policy-plan.js';

export class PolicyAgent {
  identities: IdentityTable;
  tables: CompiledTables | undefined;
  /** What the maps hold, as of our last write; read back from the kernel when unknown. */
  private mirror: PolicyMapContents | undefined;
  /** The input the current tables were compiled from: a reconcile that changes no policy input compiles nothing. */
  private compiledFrom = '';

  constructor(private readonly maps: PolicyMaps, private readonly identityFile: string) {
    this.identities = emptyIdentityTable();
    if (existsSync(identityFile)) {
      try {
        this.identities = JSON.parse(readFileSync(identityFile, 'utf8')) as IdentityTable;
      } catch { /* unreadable: allocate anew; the diff rewrites what changed */ }
    }
  }

  identityOf(w: WorkloadResource): number | undefined {
    return new IdentityIndex(this.identities).of(w.metadata.namespace, w.metadata.labels);
  }

  private allocate(workloads: readonly WorkloadResource[]): void {
    const next = allocateIdentities(this.identities, workloads);
    if (isDeepStrictEqual(next, this.identities)) return;
    this.identities = next;
    const tmp = `${this.identityFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(next));
    renameSync(tmp, this.identityFile);
  }

  /** Brings the policy maps in line with `world`; returns the number of map writes. */
  reconcile(world: PolicyWorld, endpoints: (identityOf: (w: WorkloadResource) => number | undefined) => EndpointRow[], hostIps: string[]): number {
    this.allocate(world.workloads);
    const input = JSON.stringify([world.policies, world.namespaces, world.workloads.map((w) => [w.metadata, w.spec.ip, w.spec.ports]), this.identities.entries, hostIps]);
    const tables = input === this.compiledFrom && this.tables ? this.tables : compilePolicies({ ...world, identities: this.identities, hostIps });
    const desired = encodePolicy(tables, endpoints((w) => this.identityOf(w)));
    this.mirror ??= this.maps.read();
    const ops = planPolicy(this.mirror, desired);
    try {
      this.maps.apply(ops);
    } catch (e) {
      this.mirror = undefined; // partly written: read the truth next time
      throw e;
    }
    applyToContents(this.mirror, ops);
    this.tables = tables;
    this.compiledFrom = input;
    return ops.length;
  }

  /**
   * Records a workload's cgroup before its first process runs in it, so
   * that nothing it does is ever judged without an identity.
   */
  putEndpoint(row: EndpointRow): void {
    const { key, value } = encodeEndpoint(row);
    const op = { map: 'endpoints' as const, op: 'put' as const, key, value };
    this.maps.apply([op]);
    if (this.mirror) applyToContents(this.mirror, [op]);
  }
}
