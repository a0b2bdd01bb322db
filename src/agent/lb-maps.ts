/**
 * The socket LB's maps: read their contents, and carry out a plan.
 *
 * Frontends and backends live in one map per family (ebm_lb4_* and
 * ebm_lb6_*, keyed by 4- and 16-byte addresses); the plan sees them as one
 * table, so ids stay unique across the families (the slots and affinity
 * maps are shared, by id), and each write goes to the map of its address's
 * family.
 *
 * Reading 10,000s of entries back through the FFI on every reconcile costs
 * more than the rest of it, and this agent is the maps' only writer: so the
 * kernel is read once (start, adoption of what a previous agent left) and
 * after that a mirror of what we wrote stands for it. A write that fails
 * leaves the mirror unknown: it is read back again next time.
 */
import type { LoadedObject, TypedMap } from '../kernel/index.js';
import {
  Lb4Backend, Lb4Frontend, Lb4FrontendKey, Lb4Slot, Lb4SlotKey, Lb6Backend, Lb6FrontendKey, U32Key, type ValueOf,
} from '../abi/structs.js';
import type { KBackend, KernelLb, KFrontendKey, LbOp } from './lb-plan.js';

/** IPv6 text has colons, IPv4 text none: the family of an address the plan holds. */
const isV6 = (ip: string): boolean => ip.includes(':');

export class LbMaps {
  readonly frontends: TypedMap<ValueOf<typeof Lb4FrontendKey>, ValueOf<typeof Lb4Frontend>>;
  readonly frontends6: TypedMap<ValueOf<typeof Lb6FrontendKey>, ValueOf<typeof Lb4Frontend>>;
  readonly slots: TypedMap<ValueOf<typeof Lb4SlotKey>, ValueOf<typeof Lb4Slot>>;
  readonly backends: TypedMap<number, ValueOf<typeof Lb4Backend>>;
  readonly backends6: TypedMap<number, ValueOf<typeof Lb6Backend>>;

  constructor(obj: LoadedObject) {
    this.frontends = obj.map('ebm_lb4_frontends', Lb4FrontendKey, Lb4Frontend);
    this.frontends6 = obj.map('ebm_lb6_frontends', Lb6FrontendKey, Lb4Frontend);
    this.slots = obj.map('ebm_lb4_slots', Lb4SlotKey, Lb4Slot);
    this.backends = obj.map('ebm_lb4_backends', U32Key, Lb4Backend);
    this.backends6 = obj.map('ebm_lb6_backends', U32Key, Lb6Backend);
  }

  private mirror: { frontends: Map<string, KernelLb['frontends'][number]>; slots: KernelLb['slots']; backends: KernelLb['backends'] } | undefined;

  /** What the maps hold: the mirror, or the kernel's contents when there is none yet. */
  current(): KernelLb {
    if (!this.mirror) {
      const k = this.read();
      this.mirror = { frontends: new Map(k.frontends.map((f) => [feName(f.key), f])), slots: k.slots, backends: k.backends };
    }
    return { frontends: [...this.mirror.frontends.values()], slots: this.mirror.slots, backends: this.mirror.backends };
  }

  /** Forgets the mirror: the next current() reads the kernel. */
  invalidate(): void {
    this.mirror = undefined;
  }

  read(): KernelLb {
    const frontends = [...this.frontends.entries(), ...this.frontends6.entries()].map(([key, value]) => ({ key, value }));
    const slots = new Map<number, Map<number, number>>();
    for (const [k, v] of this.slots.entries()) {
      const m = slots.get(k.frontend_id) ?? new Map<number, number>();
      m.set(k.slot, v.backend_id);
      slots.set(k.frontend_id, m);
    }
    const backends = new Map<number, KBackend>();
    for (const [id, b] of [...this.backends.entries(), ...this.backends6.entries()]) backends.set(id, { ip: b.ip, port: b.port, proto: b.proto });
    return { frontends, slots, backends };
  }

  private putFrontend(key: KFrontendKey, value: ValueOf<typeof Lb4Frontend>): void {
    if (isV6(key.vip)) this.frontends6.set({ ...key, pad: 0 }, value);
    else this.frontends.set({ ...key, pad: 0 }, value);
  }

  private delFrontend(key: KFrontendKey): void {
    if (isV6(key.vip)) this.frontends6.delete({ ...key, pad: 0 });
    else this.frontends.delete({ ...key, pad: 0 });
  }

  apply(ops: LbOp[]): void {
    const m = this.mirror;
    this.mirror = undefined;
    // A backend id is in one family's map; which, the plan says (put) or the mirror knew (delete).
    const known = m?.backends;
    for (const o of ops) {
      switch (o.op) {
        case 'putBackend':
          if (isV6(o.backend.ip)) this.backends6.set(o.id, { ...o.backend, pad: 0 });
          else this.backends.set(o.id, { ...o.backend, pad: 0 });
          break;
        case 'putSlot': this.slots.set({ frontend_id: o.frontendId, slot: o.slot }, { backend_id: o.backendId }); break;
        case 'putFrontend': this.putFrontend(o.key, { ...o.value, pad: 0 }); break;
        case 'delSlot': this.slots.delete({ frontend_id: o.frontendId, slot: o.slot }); break;
        case 'delFrontend': this.delFrontend(o.key); break;
        case 'delBackend': {
          const b = known?.get(o.id);
          if (!b || isV6(b.ip)) this.backends6.delete(o.id);
          if (!b || !isV6(b.ip)) this.backends.delete(o.id);
          break;
        }
      }
    }
    if (m) {
      applyToMirror(m, ops);
      this.mirror = m;
    }
  }
}

const feName = (k: { vip: string; port: number; proto: number }) => `${k.vip}|${k.port}/${k.proto}`;

/** What ops do to the maps, done to the mirror (exported for tests). */
export function applyToMirror(
  m: { frontends: Map<string, KernelLb['frontends'][number]>; slots: KernelLb['slots']; backends: KernelLb['backends'] },
  ops: LbOp[],
): void {
  for (const o of ops) {
    switch (o.op) {
      case 'putBackend': m.backends.set(o.id, { ip: o.backend.ip, port: o.backend.port, proto: o.backend.proto }); break;
      case 'putSlot': {
        let s = m.slots.get(o.frontendId);
        if (!s) m.slots.set(o.frontendId, (s = new Map()));
        s.set(o.slot, o.backendId);
        break;
      }
      case 'putFrontend': m.frontends.set(feName(o.key), { key: { ...o.key }, value: { ...o.value } }); break;
      case 'delSlot': {
        const s = m.slots.get(o.frontendId);
        if (s) { s.delete(o.slot); if (!s.size) m.slots.delete(o.frontendId); }
        break;
      }
      case 'delFrontend': m.frontends.delete(feName(o.key)); break;
      case 'delBackend': m.backends.delete(o.id); break;
    }
  }
}
