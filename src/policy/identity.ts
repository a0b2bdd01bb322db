/**
 * Security identities: one small number per distinct (namespace, label set).
 *
 * Policy is enforced on identities, not on IPs or workloads, because
 * everything a NetworkPolicy selector can see about a workload is its
 * namespace and its labels: two workloads with the same namespace and labels
 * are indistinguishable to every policy, so they share an identity and every
 * kernel table stays as small as the number of distinct label sets.
 *
 * Reserved ids (the kernel must agree; see tables.ts):
 *   0          none / "any peer" wildcard in the allow table; never an identity
 *   1          host: the node itself (its own addresses)
 *   2          world: any address that is not a workload in the mesh
 *   3..255     reserved for later (e.g. kube-apiserver, health)
 *   256..      allocated to (namespace, labels)
 * The allow table also uses ids with the top bit set for CIDR groups, so
 * allocated identities stay below 2^31.
 *
 * Allocation is a pure function (previous table, workloads, now) -> table, so
 * the control plane can persist the table and get the same numbers after a
 * restart: an existing key keeps its id, and new keys take the lowest free
 * ids in a fixed (sorted) order, so the result never depends on the order
 * the workloads were listed in.
 */
import { EbmeshError } from '../errors.js';
import type { WorkloadResource } from '../resources/schemas.js';

export const IDENTITY_ANY = 0;
export const IDENTITY_HOST = 1;
export const IDENTITY_WORLD = 2;
export const FIRST_ALLOCATED_IDENTITY = 256;
export const MAX_IDENTITY = 0x7fffffff;

export type Labels = Readonly<Record<string, string>>;

export interface IdentityEntry {
  id: number;
  namespace: string;
  labels: Record<string, string>;
}

export interface ReleasedIdentity {
  id: number;
  key: string;
  /** Milliseconds since the epoch, from the caller's clock. */
  releasedAt: number;
}

/** What the control plane persists. Plain JSON. */
export interface IdentityTable {
  version: 1;
  entries: IdentityEntry[];
  /** Ids freed recently; not handed to another key until the grace period is over. */
  released: ReleasedIdentity[];
}

export interface AllocateOptions {
  now?: number;
  /**
   * How long a freed id stays unused. Long enough that no kernel map, flow
   * record or in-flight connection on any node still means the old label set
   * by it: reusing sooner would briefly grant the new owner the old one's
   * rights. Default: 10 minutes.
   */
  graceMs?: number;
}

export const emptyIdentityTable = (): IdentityTable => ({ version: 1, entries: [], released: [] });

/** Canonical, order-independent text of (namespace, labels); the allocation key. */
export function identityKey(namespace: string, labels: Labels | undefined): string {
  const pairs = Object.entries(labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // JSON keeps "=" and "," inside values from making two label sets collide.
  return JSON.stringify([namespace, pairs]);
}

function workloadKey(w: WorkloadResource): string {
  return identityKey(w.metadata.namespace, w.metadata.labels);
}

/**
 * The table for `workloads`, given the previous one. Keys no longer used
 * are released (kept in `released` for the grace period).
 */
export function allocateIdentities(previous: IdentityTable | undefined, workloads: readonly WorkloadResource[], opts: AllocateOptions = {}): IdentityTable {
  const now = opts.now ?? Date.now();
  const graceMs = opts.graceMs ?? 10 * 60_000;
  const prev = previous ?? emptyIdentityTable();

  const wanted = new Map<string, { namespace: string; labels: Record<string, string> }>();
  for (const w of workloads) wanted.set(workloadKey(w), { namespace: w.metadata.namespace, labels: { ...(w.metadata.labels ?? {}) } });

  const prevByKey = new Map(prev.entries.map((e) => [identityKey(e.namespace, e.labels), e.id]));
  const entries: IdentityEntry[] = [];
  const used = new Set<number>();
  for (const [key, v] of wanted) {
    const id = prevByKey.get(key);
    if (id !== undefined) { entries.push({ id, ...v }); used.add(id); }
  }

  // Still within grace: blocked for other keys; past grace: forgotten.
  const released = new Map<number, ReleasedIdentity>();
  for (const r of prev.released) if (now - r.releasedAt < graceMs) released.set(r.id, r);
  for (const [key, id] of prevByKey) if (!wanted.has(key)) released.set(id, { id, key, releasedAt: now });

  const fresh = [...wanted.keys()].filter((k) => !prevByKey.has(k)).sort();
  let next = FIRST_ALLOCATED_IDENTITY;
  for (const key of fresh) {
    const v = wanted.get(key)!;
    // The same label set coming back within grace may have its own id again: same key, same rights.
    const back = [...released.values()].find((r) => r.key === key && !used.has(r.id));
    let id: number;
    if (back) {
      id = back.id;
    } else {
      while (used.has(next) || released.has(next)) next++;
      id = next;
    }
    if (id > MAX_IDENTITY) throw new EbmeshError('EBMESH_IDENTITY_EXHAUSTED', 'no security identity left to allocate');
    released.delete(id);
    used.add(id);
    entries.push({ id, ...v });
  }

  entries.sort((a, b) => a.id - b.id);
  return { version: 1, entries, released: [...released.values()].sort((a, b) => a.id - b.id) };
}

/** Fast lookup over a table: key -> id and id -> entry. */
export class IdentityIndex {
  private readonly byKey = new Map<string, number>();
  private readonly byId = new Map<number, IdentityEntry>();

  constructor(table: IdentityTable) {
    for (const e of table.entries) {
      const key = identityKey(e.namespace, e.labels);
      if (this.byKey.has(key)) throw new EbmeshError('EBMESH_IDENTITY_TABLE_INVALID', `two identities for ${key}`);
      if (this.byId.has(e.id)) throw new EbmeshError('EBMESH_IDENTITY_TABLE_INVALID', `identity ${e.id} is used twice`);
      if (e.id < FIRST_ALLOCATED_IDENTITY || e.id > MAX_IDENTITY) throw new EbmeshError('EBMESH_IDENTITY_TABLE_INVALID', `identity ${e.id} is outside the allocatable range`);
      this.byKey.set(key, e.id);
      this.byId.set(e.id, e);
    }
  }

  get(id: number): IdentityEntry | undefined { return this.byId.get(id); }

  of(namespace: string, labels: Labels | undefined): number | undefined { return this.byKey.get(identityKey(namespace, labels)); }

  /** The identity of a workload; an error if the table was not allocated for it. */
  ofWorkload(w: WorkloadResource): number {
    const id = this.of(w.metadata.namespace, w.metadata.labels);
    if (id === undefined) {
      throw new EbmeshError('EBMESH_IDENTITY_MISSING', `no identity for Workload ${w.metadata.namespace}/${w.metadata.name}`, {
        hint: 'allocate identities for the current workloads before compiling policy',
      });
    }
    return id;
  }
}

export interface IpCacheEntry {
  ip: string;
  identity: number;
  /** namespace/name, for people; the kernel map holds only ip -> identity. */
  workload: string;
}

/**
 * IP -> identity for every workload address of either family (plus the node's own
 * addresses as `host`). An address not in this table is `world`. Two
 * workloads claiming one address is an error: the kernel could not tell
 * them apart, and guessing would hand one the other's rights.
 */
export function buildIpCache(workloads: readonly WorkloadResource[], identities: IdentityTable, hostIps: readonly string[] = []): IpCacheEntry[] {
  const index = new IdentityIndex(identities);
  const byIp = new Map<string, IpCacheEntry>();
  for (const ip of hostIps) byIp.set(ip, { ip, identity: IDENTITY_HOST, workload: '(host)' });
  for (const w of workloads) {
    const ref = `${w.metadata.namespace}/${w.metadata.name}`;
    for (const field of ['ip', 'ipv6'] as const) {
      const ip = w.spec[field];
      if (!ip) continue;
      const other = byIp.get(ip);
      if (other) {
        throw new EbmeshError('EBMESH_IP_CONFLICT', `Workload ${ref} and ${other.workload} both have ip ${ip}`, { where: `Workload ${ref}: spec.${field}` });
      }
      byIp.set(ip, { ip, identity: index.ofWorkload(w), workload: ref });
    }
  }
  return [...byIp.values()].sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
}
