/** The socket LB's maps: read their contents, and carry out a plan. */
import type { LoadedObject, TypedMap } from '../kernel/index.js';
import {
  Lb4Backend, Lb4Frontend, Lb4FrontendKey, Lb4Slot, Lb4SlotKey, U32Key, type ValueOf,
} from '../abi/structs.js';
import type { KernelLb, LbOp } from './lb-plan.js';

export class LbMaps {
  readonly frontends: TypedMap<ValueOf<typeof Lb4FrontendKey>, ValueOf<typeof Lb4Frontend>>;
  readonly slots: TypedMap<ValueOf<typeof Lb4SlotKey>, ValueOf<typeof Lb4Slot>>;
  readonly backends: TypedMap<number, ValueOf<typeof Lb4Backend>>;

  constructor(obj: LoadedObject) {
    this.frontends = obj.map('ebm_lb4_frontends', Lb4FrontendKey, Lb4Frontend);
    this.slots = obj.map('ebm_lb4_slots', Lb4SlotKey, Lb4Slot);
    this.backends = obj.map('ebm_lb4_backends', U32Key, Lb4Backend);
  }

  read(): KernelLb {
    const frontends = [...this.frontends.entries()].map(([key, value]) => ({ key, value }));
    const slots = new Map<number, Map<number, number>>();
    for (const [k, v] of this.slots.entries()) {
      const m = slots.get(k.frontend_id) ?? new Map<number, number>();
      m.set(k.slot, v.backend_id);
      slots.set(k.frontend_id, m);
    }
    const backends = new Map([...this.backends.entries()].map(([id, b]) => [id, { ip: b.ip, port: b.port, proto: b.proto }]));
    return { frontends, slots, backends };
  }

  apply(ops: LbOp[]): void {
    for (const o of ops) {
      switch (o.op) {
        case 'putBackend': this.backends.set(o.id, { ...o.backend, pad: 0 }); break;
        case 'putSlot': this.slots.set({ frontend_id: o.frontendId, slot: o.slot }, { backend_id: o.backendId }); break;
        case 'putFrontend': this.frontends.set({ ...o.key, pad: 0 }, { ...o.value, pad: 0 }); break;
        case 'delSlot': this.slots.delete({ frontend_id: o.frontendId, slot: o.slot }); break;
        case 'delFrontend': this.frontends.delete({ ...o.key, pad: 0 }); break;
        case 'delBackend': this.backends.delete(o.id); break;
      }
    }
  }
}
