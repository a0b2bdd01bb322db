/**
 * Decide, then act: the map writes that take the kernel's load-balancing
 * tables from what they hold to what is desired, as a pure function.
 *
 * The order of the writes is what keeps connect() correct while they land:
 * backends first, then each frontend's slots, then its count, then the
 * slots beyond the new count, then frontends and backends no longer used.
 * At every step each slot below a frontend's count names a live backend,
 * and a backend that left is out of every slot before its count shrinks.
 */
import { FRONTEND_F_AFFINITY, FRONTEND_F_L7, IPPROTO } from '../abi/structs.js';
import type { DesiredFrontend } from '../controlplane/index.js';

export interface KBackend { ip: string; port: number; proto: number }
export interface KFrontendKey { vip: string; port: number; proto: number }
export interface KFrontend { id: number; count: number; flags: number; affinity_timeout: number }

export interface KernelLb {
  frontends: Array<{ key: KFrontendKey; value: KFrontend }>;
  slots: Map<number, Map<number, number>>; // frontend id -> slot -> backend id
  backends: Map<number, KBackend>;
}

export type LbOp =
  | { op: 'putBackend'; id: number; backend: KBackend }
  | { op: 'putSlot'; frontendId: number; slot: number; backendId: number }
  | { op: 'putFrontend'; key: KFrontendKey; value: KFrontend }
  | { op: 'delSlot'; frontendId: number; slot: number }
  | { op: 'delFrontend'; key: KFrontendKey }
  | { op: 'delBackend'; id: number };

const feName = (k: KFrontendKey) => `${k.vip}|${k.port}/${k.proto}`;
const beName = (b: KBackend) => `${b.ip}|${b.port}/${b.proto}`;

/** Hands out the lowest unused ids, scanning forward once per plan. */
function idAllocator(used: Set<number>): () => number {
  let i = 1;
  return () => {
    while (used.has(i)) i++;
    used.add(i);
    return i;
  };
}

export function planLb(current: KernelLb, desired: DesiredFrontend[]): LbOp[] {
  const early: LbOp[] = [];
  const middle: LbOp[] = [];
  const late: LbOp[] = [];

  const backendIds = new Map<string, number>();
  for (const [id, b] of current.backends) backendIds.set(beName(b), id);
  const nextBackendId = idAllocator(new Set(current.backends.keys()));
  const liveBackends = new Set<number>();

  const curFe = new Map(current.frontends.map((f) => [feName(f.key), f]));
  const nextFrontendId = idAllocator(new Set(current.frontends.map((f) => f.value.id)));
  const liveFe = new Set<string>();

  for (const d of desired) {
    const proto = IPPROTO[d.proto];
    const key: KFrontendKey = { vip: d.vip, port: d.port, proto };
    const name = feName(key);
    liveFe.add(name);
    const cur = curFe.get(name);
    const id = cur?.value.id ?? nextFrontendId();

    const ids = d.backends.map((b) => {
      const kb: KBackend = { ip: b.ip, port: b.port, proto };
      let bid = backendIds.get(beName(kb));
      if (bid === undefined) {
        bid = nextBackendId();
        backendIds.set(beName(kb), bid);
        early.push({ op: 'putBackend', id: bid, backend: kb });
      }
      liveBackends.add(bid);
      return bid;
    });

    const curSlots = current.slots.get(id) ?? new Map<number, number>();
    ids.forEach((bid, slot) => {
      if (curSlots.get(slot) !== bid) middle.push({ op: 'putSlot', frontendId: id, slot, backendId: bid });
    });
    const value: KFrontend = {
      id,
      count: ids.length,
      flags: (d.affinityTimeout !== undefined ? FRONTEND_F_AFFINITY : 0) | (d.l7 ? FRONTEND_F_L7 : 0),
      affinity_timeout: d.affinityTimeout ?? 0,
    };
    const same = cur && cur.value.count === value.count && cur.value.flags === value.flags && cur.value.affinity_timeout === value.affinity_timeout;
    if (!same) middle.push({ op: 'putFrontend', key, value });
    for (const slot of [...curSlots.keys()].filter((s) => s >= ids.length).sort((a, b) => a - b)) {
      middle.push({ op: 'delSlot', frontendId: id, slot });
    }
  }

  for (const f of current.frontends) {
    if (liveFe.has(feName(f.key))) continue;
    late.push({ op: 'delFrontend', key: f.key });
    for (const slot of current.slots.get(f.value.id)?.keys() ?? []) late.push({ op: 'delSlot', frontendId: f.value.id, slot });
  }
  // Slots of ids that no frontend owns (a crash between writes) go too.
  const feIds = new Set(current.frontends.map((f) => f.value.id));
  for (const [fid, slots] of current.slots) {
    if (feIds.has(fid)) continue;
    for (const slot of slots.keys()) late.push({ op: 'delSlot', frontendId: fid, slot });
  }
  for (const id of current.backends.keys()) if (!liveBackends.has(id)) late.push({ op: 'delBackend', id });

  return [...early, ...middle, ...late];
}
