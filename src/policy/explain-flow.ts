/**
 * What the node API answers about policy: a flow explained against the
 * tables the kernel holds, and recent drops (from observe's flow history)
 * with the policy that decided them.
 */
import { EbmeshError } from '../errors.js';
import { formatHostPort } from '../resources/ip.js';
import { resolveTargetPort, selectedWorkloads } from '../controlplane/endpoints.js';
import { wlKey, type Snapshot } from '../controlplane/state.js';
import { explain, policyWorldOf, type CompiledTables, type Explanation, type IdentityTable, type Proto } from './index.js';
import { workloadAddress } from './world.js';
import { serviceVips } from '../controlplane/endpoints.js';
import { formatIp, parseIp } from '../resources/ip.js';
import { Reason, RULE_NONE } from '../abi/structs.js';
import { POLICY_DROP_REASONS } from './policy-maps.js';
import { reasonName, type Flow, type FlowFilter } from '../observe/flow.js';
import type { ServiceResource, WorkloadResource } from '../resources/index.js';
import type { DropRowOut } from '../api/node.js';

function byRef<T extends { metadata: { namespace: string; name: string } }>(items: T[], ref: string): T[] {
  const [a, b] = ref.split('/');
  return items.filter((x) => (b === undefined ? x.metadata.name === a : x.metadata.namespace === a && x.metadata.name === b));
}

function one<T extends { metadata: { namespace: string; name: string } }>(items: T[], what: string, ref: string): T {
  if (items.length > 1) {
    throw new EbmeshError('EBMESH_AMBIGUOUS', `${what} ${ref} is in several namespaces`, { hint: `say NAMESPACE/NAME: ${items.map(wlKey).join(', ')}` });
  }
  return items[0]!;
}

/** "TARGET[:PORT[/PROTO]]" -> parts, an IPv6 address in brackets ("[fd00::5]:80"); PROTO defaults to TCP. */
export function parseTarget(text: string): { ref: string; port?: number; proto: Proto } {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::(\d+)(?:\/(tcp|udp))?)?$/i.exec(text) ?? /^([0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)()()$/.exec(text);
  if (!m) throw new EbmeshError('EBMESH_USAGE', `bad target "${text}"`, { hint: 'WORKLOAD|SERVICE|ADDRESS[:PORT/PROTO], e.g. web:80/TCP or [fd00::5]:80' });
  const port = m[2] === undefined ? undefined : Number(m[2]);
  if (port !== undefined && (port < 1 || port > 65535)) throw new EbmeshError('EBMESH_USAGE', `bad port ${m[2]}`);
  return { ref: m[1]!.replace(/^\[(.*)\]$/, '$1'), ...(port !== undefined ? { port } : {}), proto: (m[3]?.toUpperCase() || 'TCP') as Proto };
}

/** The node's policy state explain reads: identities and the tables the kernel holds. */
export interface HeldPolicy {
  identities: IdentityTable;
  tables: CompiledTables | undefined;
}

/**
 * Explains FROM -> TO, TO a workload, a Service or an address. A flow is
 * carried over one family, and ipBlocks see that family's address, so a
 * workload pair is explained over each family both have an address of, a
 * Service over each of its VIPs, and an address over its own family.
 */
export function explainFlow(held: HeldPolicy, snap: Snapshot, fromRef: string, toText: string): { explanations: Explanation[] } {
  const from = one(byRef(snap.workloads, fromRef), 'workload', fromRef);
  if (!from) throw new EbmeshError('EBMESH_NOT_FOUND', `workload ${fromRef} not found`);
  const target = parseTarget(toText);
  const state = { ...policyWorldOf(snap), identities: held.identities, ...(held.tables ? { tables: held.tables } : {}) };
  const address = parseIp(target.ref);
  if (address) {
    const ip = formatIp(address);
    const svc = snap.services.find((s) => serviceVips(s).some((v) => v.vip === ip));
    if (svc) return { explanations: explainService(state, snap, from, svc, target, [ip]) };
    if (target.port === undefined) throw new EbmeshError('EBMESH_USAGE', `say which port: ${toText}:PORT`);
    return { explanations: [explain(state, wlKey(from), ip, target.port, target.proto)] };
  }
  const wl = byRef(snap.workloads, target.ref);
  if (wl.length) {
    const to = one(wl, 'workload', target.ref);
    const port = target.port ?? to.spec.ports.find((p) => p.protocol === target.proto)?.containerPort;
    if (port === undefined) throw new EbmeshError('EBMESH_USAGE', `say which port: ${wlKey(to)} declares no ${target.proto} port`);
    const families = ([4, 6] as const).filter((f) => workloadAddress(from, f) && workloadAddress(to, f));
    return { explanations: (families.length ? families : [4 as const]).map((family) => explain(state, wlKey(from), wlKey(to), port, target.proto, { family })) };
  }
  const svcs = byRef(snap.services, target.ref);
  if (!svcs.length) throw new EbmeshError('EBMESH_NOT_FOUND', `no workload or service ${target.ref}`);
  const svc: ServiceResource = one(svcs, 'service', target.ref);
  return { explanations: explainService(state, snap, from, svc, target, serviceVips(svc).map((v) => v.vip)) };
}

/** A Service dialled at each of `vips`: the socket LB picks the backend before policy sees the connect, so each backend is judged on its own. */
function explainService(state: Parameters<typeof explain>[0], snap: Snapshot, from: WorkloadResource, svc: ServiceResource,
  target: { port?: number; proto: Proto }, vips: string[]): Explanation[] {
  const sp = target.port === undefined
    ? svc.spec.ports.find((p) => p.protocol === target.proto)
    : svc.spec.ports.find((p) => p.port === target.port && p.protocol === target.proto);
  if (!sp || !vips.length) throw new EbmeshError('EBMESH_NOT_FOUND', `service ${wlKey(svc)} has no port ${target.port ?? ''}/${target.proto}`);
  const backends = selectedWorkloads(svc, snap.workloads);
  if (!backends.length) throw new EbmeshError('EBMESH_NOT_FOUND', `service ${wlKey(svc)} selects no workload: a connect is refused (no backend)`);
  return vips.flatMap((vip) => backends.flatMap((b: WorkloadResource) => {
    const port = resolveTargetPort(sp, b);
    if (port === undefined) return [];
    return [explain(state, wlKey(from), vip, sp.port, sp.protocol, {
      resolveService: () => ({ to: { workload: wlKey(b) }, port, service: wlKey(svc) }),
    })];
  }));
}

/** How many recent drops `policy drops` lists: the newest of observe's flow history. */
export const DROPS_LIMIT = 1000;
const DROP_REASONS = POLICY_DROP_REASONS.map((r) => reasonName(Reason[r])).join(',');
const HOOKS: Record<NonNullable<Flow['hook']>, string> = { socket: 'connect4', 'skb-egress': 'skb-egress', 'skb-ingress': 'skb-ingress' };

/** A policy drop as `policy drops` lists it, from the flow observe recorded. */
export function dropRow(f: Flow): DropRowOut {
  return {
    time: f.time,
    // A connect of an IPv6 destination was judged at connect6 (a v4-mapped one is IPv4, at connect4 or as its twin).
    hook: f.hook === 'socket' && f.destination.ip.includes(':') ? 'connect6' : f.hook ? HOOKS[f.hook] : undefined,
    reason: f.reason,
    // The judged side: the reason says it for policy; a spoofed or unknown sender is judged where the packet was.
    direction: f.reason === 'policy-ingress' || (f.reason !== 'policy-egress' && f.hook === 'skb-ingress') ? 'ingress' : 'egress',
    proto: f.proto,
    src: formatHostPort(f.source.ip, f.source.port), dst: formatHostPort(f.destination.ip, f.destination.port),
    srcIdentity: f.source.identity, dstIdentity: f.destination.identity,
    policy: f.policy?.name,
    rule: f.policy === undefined || f.policy.rule === RULE_NONE ? undefined : f.policy.rule,
  };
}

/** The filter of observe's history that selects policy drops. */
export const DROPS_FILTER: FlowFilter = { verdict: 'DROPPED', type: 'drop', reason: DROP_REASONS };
