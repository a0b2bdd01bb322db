/** The policy maps: read what they hold, carry out a plan, count drops. */
import type { LoadedObject, RawMap } from '../kernel/index.js';
import { REASON_MAX, Reason } from '../abi/structs.js';
import { emptyPolicyContents, type PolicyMapContents, type PolicyMapName, type PolicyOp } from './policy-plan.js';

/** The reasons the policy programs drop for (enum ebm_reason), each counted in ebm_drops. */
export const POLICY_DROP_REASONS = ['POLICY_EGRESS', 'POLICY_INGRESS', 'SPOOFED_SOURCE', 'NO_IDENTITY'] as const satisfies ReadonlyArray<keyof typeof Reason>;

const MAP_NAMES: Record<PolicyMapName, string> = {
  ipcache: 'ebm_pol_ipcache',
  ipcache6: 'ebm_pol_ipcache6',
  endpoints: 'ebm_pol_endpoints',
  allow: 'ebm_pol_allow',
  cidr: 'ebm_pol_cidr',
  cidr6: 'ebm_pol_cidr6',
  isolation: 'ebm_pol_isolation',
};

export class PolicyMaps {
  private readonly maps: Record<PolicyMapName, RawMap>;
  private readonly drops: RawMap;

  constructor(obj: LoadedObject) {
    this.maps = Object.fromEntries(Object.entries(MAP_NAMES).map(([k, name]) => [k, obj.rawMap(name)])) as Record<PolicyMapName, RawMap>;
    this.drops = obj.rawMap('ebm_drops');
  }

  read(): PolicyMapContents {
    const out = emptyPolicyContents();
    for (const [name, m] of Object.entries(this.maps) as Array<[PolicyMapName, RawMap]>) {
      for (const k of [...m.keys()]) {
        const v = m.lookup(k);
        if (v) out[name].set(k.toString('hex'), v.toString('hex'));
      }
    }
    return out;
  }

  apply(ops: readonly PolicyOp[]): void {
    for (const o of ops) {
      const m = this.maps[o.map];
      if (o.op === 'put') m.update(Buffer.from(o.key, 'hex'), Buffer.from(o.value!, 'hex'));
      else m.delete(Buffer.from(o.key, 'hex'));
    }
  }

  fill(): Array<{ map: string; entries: number; max: number }> {
    return (Object.entries(this.maps) as Array<[PolicyMapName, RawMap]>).map(([name, m]) => {
      let n = 0;
      for (const _ of m.keys()) n++;
      return { map: MAP_NAMES[name], entries: n, max: m.info.maxEntries };
    });
  }

  /** Drops by reason name (lower case), summed over CPUs. */
  dropCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of POLICY_DROP_REASONS) {
      const idx = Reason[name];
      if (idx >= REASON_MAX) continue;
      const key = Buffer.alloc(4);
      key.writeUInt32LE(idx);
      const buf = this.drops.lookup(key);
      let sum = 0n;
      if (buf) for (let off = 0; off + 8 <= buf.length; off += 8) sum += buf.readBigUInt64LE(off);
      out[name.toLowerCase()] = Number(sum);
    }
    return out;
  }
}
