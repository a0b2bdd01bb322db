/**
 * Policy endpoints of the node API: explain a flow against the tables the
 * kernel holds, and list recent drops with the policy that decided them.
 */
import { EbmeshError } from '../errors.js';
import { readSnapshot, resolveTargetPort, selectedWorkloads, wlKey, type Snapshot } from '../controlplane/index.js';
import { policyWorld } from '../controlplane/policy.js';
import { explain, type Explanation, type Proto } from '../policy/index.js';
import { DropReason, EventType, Hook, RULE_NONE } from '../abi/structs.js';
import type { ServiceResource, WorkloadResource } from '../resources/index.js';
import { route } from './api.js';
import type { NodeDaemon } from './node.js';

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

/** "TARGET[:PORT[/PROTO]]" -> parts; PROTO defaults to TCP. */
export function parseTarget(text: string): { ref: string; port?: number; proto: Proto } {
  const m = /^([^:]+)(?::(\d+)(?:\/(tcp|udp))?)?$/i.exec(text);
  if (!m) throw new EbmeshError('EBMESH_USAGE', `bad target "${text}"`, { hint: 'WORKLOAD|SERVICE[:PORT/PROTO], e.g. web:80/TCP' });
  const port = m[2] === undefined ? undefined : Number(m[2]);
  if (port !== undefined && (port < 1 || port > 65535)) throw new EbmeshError('EBMESH_USAGE', `bad port ${m[2]}`);
  return { ref: m[1]!, ...(port !== undefined ? { port } : {}), proto: (m[3]?.toUpperCase() ?? 'TCP') as Proto };
}

export function explainFlow(node: NodeDaemon, snap: Snapshot, fromRef: string, toText: string): { explanations: Explanation[] } {
  const from = one(byRef(snap.workloads, fromRef), 'workload', fromRef);
  if (!from) throw new EbmeshError('EBMESH_NOT_FOUND', `workload ${fromRef} not found`);
  const target = parseTarget(toText);
  const state = { ...policyWorld(snap), identities: node.policy.identities, ...(node.policy.tables ? { tables: node.policy.tables } : {}) };
  const wl = byRef(snap.workloads, target.ref);
  if (wl.length) {
    const to = one(wl, 'workload', target.ref);
    const port = target.port ?? to.spec.ports.find((p) => p.protocol === target.proto)?.containerPort;
    if (port === undefined) throw new EbmeshError('EBMESH_USAGE', `say which port: ${wlKey(to)} declares no ${target.proto} port`);
    return { explanations: [explain(state, wlKey(from), wlKey(to), port, target.proto)] };
  }
  const svcs = byRef(snap.services, target.ref);
  if (!svcs.length) throw new EbmeshError('EBMESH_NOT_FOUND', `no workload or service ${target.ref}`);
  const svc: ServiceResource = one(svcs, 'service', target.ref);
  const sp = target.port === undefined
    ? svc.spec.ports.find((p) => p.protocol === target.proto)
    : svc.spec.ports.find((p) => p.port === target.port && p.protocol === target.proto);
  if (!sp || !svc.spec.clusterIP) throw new EbmeshError('EBMESH_NOT_FOUND', `service ${wlKey(svc)} has no port ${target.port ?? ''}/${target.proto}`);
  const backends = selectedWorkloads(svc, snap.workloads);
  if (!backends.length) throw new EbmeshError('EBMESH_NOT_FOUND', `service ${wlKey(svc)} selects no workload: a connect is refused (no backend)`);
  // The socket LB picks the backend before policy sees the connect: each backend is judged on its own.
  return {
    explanations: backends.flatMap((b: WorkloadResource) => {
      const port = resolveTargetPort(sp, b);
      if (port === undefined) return [];
      return [explain(state, wlKey(from), svc.spec.clusterIP!, sp.port, sp.protocol, {
        resolveService: () => ({ to: { workload: wlKey(b) }, port, service: wlKey(svc) }),
      })];
    }),
  };
}

route('GET', '/v1/policy/explain', async ({ url }, node) => {
  const from = url.searchParams.get('from');
  const to = url.searchParams.get('to');
  if (!from || !to) throw new EbmeshError('EBMESH_USAGE', 'explain needs from and to');
  await node.reconcileNow(); // so the answer is about what the kernel holds now
  return explainFlow(node, await readSnapshot(node.store), from, to);
});

const name = (table: Record<string, number>, v: number): string =>
  Object.entries(table).find(([, x]) => x === v)?.[0]?.toLowerCase().replace(/_/g, '-') ?? String(v);

route('GET', '/v1/policy/drops', async (_r, node) => {
  const refs = node.policy.tables?.refs ?? [''];
  const events = node.datapath.events?.events() ?? [];
  return {
    counts: node.datapath.policy.dropCounts(),
    events: events.filter((e) => e.type === EventType.DROP).map((e) => ({
      tsNs: e.ts_ns.toString(),
      hook: name(Hook, e.hook),
      reason: name(DropReason, e.reason),
      direction: e.direction === 0 ? 'ingress' : 'egress',
      proto: e.proto === 6 ? 'TCP' : e.proto === 17 ? 'UDP' : String(e.proto),
      src: `${e.saddr}:${e.sport}`, dst: `${e.daddr}:${e.dport}`,
      srcIdentity: e.src_identity, dstIdentity: e.dst_identity,
      policy: refs[e.policy_ref] || undefined,
      rule: e.rule === RULE_NONE ? undefined : e.rule,
    })),
  };
});
