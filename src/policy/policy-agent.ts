/**
 * The node's half of network policy, the acting part: a planned policy
 * (identities, compiled tables, this node's endpoint cgroups; see
 * src/agent/plan.ts) written to the kernel maps as an ordered diff
 * (policy-plan.ts), and the identity table persisted so that ids survive
 * restarts.
 *
 * Nothing here decides policy: the compiler does, and the tables kept here
 * are what explain and the drop events are read against.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writePrivateFile } from '../host/private-files.js';
import { isDeepStrictEqual } from 'node:util';
import { IdentityIndex, emptyIdentityTable, type CompiledTables, type IdentityTable } from './index.js';
import type { PolicyPlan } from './node-policy.js';
import type { WorkloadResource } from '../resources/index.js';
import type { PolicyMaps } from './policy-maps.js';
import { applyToContents, encodePolicy, planPolicy, type EndpointRow, type PolicyMapContents } from './policy-plan.js';

export class PolicyAgent {
  identities: IdentityTable;
  tables: CompiledTables | undefined;
  /** What the maps hold, as of our last write; read back from the kernel when unknown. */
  private mirror: PolicyMapContents | undefined;

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

  private persist(next: IdentityTable): void {
    if (isDeepStrictEqual(next, this.identities)) return;
    this.identities = next;
    writePrivateFile(this.identityFile, JSON.stringify(next));
  }

  /**
   * Brings the policy maps in line with the plan; `cgroupIdOf` resolves each
   * endpoint's cgroup (one that does not exist has no entry). Returns the
   * number of map writes.
   */
  apply(plan: PolicyPlan, cgroupIdOf: (path: string) => bigint | undefined): number {
    this.persist(plan.identities);
    const rows: EndpointRow[] = [];
    for (const e of plan.endpoints) {
      const cgroupId = cgroupIdOf(e.cgroup);
      if (cgroupId !== undefined) rows.push({ cgroupId, identity: e.identity, ...(e.ip ? { ip: e.ip } : {}), ...(e.ipv6 ? { ipv6: e.ipv6 } : {}) });
    }
    const desired = encodePolicy(plan.tables, rows);
    this.mirror ??= this.maps.read();
    const ops = planPolicy(this.mirror, desired);
    try {
      this.maps.apply(ops);
    } catch (e) {
      this.mirror = undefined; // partly written: read the truth next time
      throw e;
    }
    applyToContents(this.mirror, ops);
    this.tables = plan.tables;
    return ops.length;
  }
}
