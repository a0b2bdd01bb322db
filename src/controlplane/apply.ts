/**
 * apply and delete: the only writers of resources. Each checks the state as
 * it would be after the change (so a file may hold a Service and the
 * Workloads it selects, in any order), fills in what Kubernetes would
 * allocate (clusterIP; for lab workloads an IP), and commits all or nothing.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Op, Store } from '../store/index.js';
import {
  describeResource, resourceKey, ResourceError, type AnyResource, type MeshConfigResource, type Problem,
  type ServiceResource, type WorkloadResource,
} from '../resources/index.js';
import { allocator, containsAddress, formatCidr, hostAddress, mustParseCidr, type Cidr } from '../net/ipam.js';
import { storeKey, statusKey, RESOURCES, defaultMesh } from './state.js';
import { WorkloadIndex } from './frontend-index.js';
import { validators } from './validators.js';
import { checkStoredResource } from './stored.js';
import { NODES, nodeIndex, nodePodSubnet, nodePodSubnet6, workloadNode, type NodeRecord } from './nodes.js';
import { serviceFamilies } from './service-ips.js';
import type { IpFamilyName } from '../resources/index.js';

export { nodePodSubnet, nodePodSubnet6 };

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  resource: string;
  action: ApplyAction | 'deleted' | 'not found';
}

/** Kinds are applied in dependency order, whatever order the file has. */
const ORDER = ['MeshConfig', 'Namespace', 'Workload', 'Service'];
function rank(kind: string): number {
  const i = ORDER.indexOf(kind);
  return i < 0 ? ORDER.length : i;
}

/** The node's slice of the pod CIDR: one /24 per node, the first for node 0. */
export async function applyResources(store: Store, input: AnyResource[], file = '<input>'): Promise<ApplyResult[]> {
  // What is stored, as far as it passes its check (stored.ts): a key written around apply is neither trusted nor kept.
  const stored = new Map<string, AnyResource>((await store.list<unknown>(RESOURCES)).flatMap((e) => {
    const c = checkStoredResource(e.key, e.value, RESOURCES);
    return 'ok' in c ? [[e.key, c.ok] as const] : [];
  }));
  let hasServicesOrWorkloads = false;
  let oldMesh = defaultMesh;
  for (const r of stored.values()) {
    if (r.kind === 'Service' || r.kind === 'Workload') hasServicesOrWorkloads = true;
    else if (r.kind === 'MeshConfig') oldMesh = r;
  }
  const after = new Map(stored);
  const problems: Problem[] = [];
  const sorted = [...input].sort((a, b) => rank(a.kind) - rank(b.kind));
  const problem = (r: AnyResource, field: string | undefined, message: string) =>
    problems.push({ file, resource: describeResource(r), field, message });

  for (const r of sorted) after.set(storeKey(r), structuredClone(r));
  const all = [...after.values()];
  const mesh = (all.find((r) => r.kind === 'MeshConfig') as MeshConfigResource | undefined) ?? defaultMesh;
  const services = all.filter((r): r is ServiceResource => r.kind === 'Service');
  const workloads = all.filter((r): r is WorkloadResource => r.kind === 'Workload');

  // The address plan cannot move under existing services and workloads.
  const newMeshInput = input.find((r) => r.kind === 'MeshConfig') as MeshConfigResource | undefined;
  if (newMeshInput && hasServicesOrWorkloads) {
    for (const f of ['serviceCIDR', 'podCIDR', 'serviceCIDRv6', 'podCIDRv6'] as const) {
      if (newMeshInput.spec[f] !== oldMesh.spec[f]) {
        problem(newMeshInput, `spec.${f}`, `cannot change from ${oldMesh.spec[f] ?? '(none)'} while services or workloads exist`);
      }
    }
  }

  const touched = new Set(input.map((r) => storeKey(r)));

  // Service VIPs, one per family: keep what was allocated, check what was given, allocate the rest.
  const svcCidrs: Partial<Record<IpFamilyName, { text: string; cidr: Cidr }>> = {
    IPv4: { text: mesh.spec.serviceCIDR, cidr: mustParseCidr(mesh.spec.serviceCIDR, 4) },
    ...(mesh.spec.serviceCIDRv6 ? { IPv6: { text: mesh.spec.serviceCIDRv6, cidr: mustParseCidr(mesh.spec.serviceCIDRv6, 6) } } : {}),
  };
  const vipOwner = new Map<string, ServiceResource>();
  const plans = new Map<ServiceResource, ReturnType<typeof serviceFamilies>>();
  for (const s of services) {
    const prev = stored.get(storeKey(s)) as ServiceResource | undefined;
    const plan = serviceFamilies(s, prev, mesh);
    plans.set(s, plan);
    if (touched.has(storeKey(s))) for (const p of plan.problems) problem(s, p.field, p.message);
    for (const [family, vip] of Object.entries(plan.vips) as Array<[IpFamilyName, string]>) {
      const range = svcCidrs[family];
      const field = vip === s.spec.clusterIP ? 'spec.clusterIP' : 'spec.clusterIPs';
      if (range && !containsAddress(range.cidr, vip)) problem(s, field, `${vip} is outside the ${family === 'IPv6' ? 'IPv6 ' : ''}service CIDR ${range.text}`);
      const owner = vipOwner.get(vip);
      if (owner) problem(s, field, `${vip} is already the VIP of ${describeResource(owner)}`);
      vipOwner.set(vip, s);
    }
  }
  const nextVip = new Map(Object.entries(svcCidrs).map(([f, r]) => [f, allocator(r.cidr, vipOwner)]));
  for (const s of services) {
    // Services this apply does not touch keep what they hold (a stored one is not ours to change).
    if (!touched.has(storeKey(s))) continue;
    const plan = plans.get(s)!;
    const ips: string[] = [];
    for (const family of plan.families) {
      let vip = plan.vips[family];
      if (!vip) {
        const next = nextVip.get(family);
        if (!next) continue; // the family's own problem is reported already
        vip = next();
        if (!vip) { problem(s, 'spec.clusterIPs', `the ${family} service CIDR ${svcCidrs[family]!.text} is full`); continue; }
        vipOwner.set(vip, s);
      }
      ips.push(vip);
    }
    // What Kubernetes fills in, so `get` shows what the mesh serves.
    s.spec.ipFamilyPolicy = plan.policy;
    s.spec.ipFamilies = plan.families;
    s.spec.clusterIPs = ips;
    s.spec.clusterIP = ips[0];
  }

  // Workload IPs: lab workloads get one from their node's pod subnet, and
  // one from its IPv6 pod subnet when the mesh is dual-stack.
  const nodes = (await store.list<NodeRecord>(NODES)).map((e) => e.value);
  const nodeOf = new Map<WorkloadResource, number>();
  for (const w of workloads) {
    const name = workloadNode(w, nodes);
    const i = nodeIndex(name, nodes);
    if (i === undefined) problem(w, 'spec.node', `no node "${name}" in the mesh (nodes: ${nodes.map((n) => n.name).join(', ')})`);
    nodeOf.set(w, i ?? 0);
  }
  const families = [
    { field: 'ip' as const, subnetOf: (i: number) => nodePodSubnet(mesh, i) },
    { field: 'ipv6' as const, subnetOf: (i: number) => nodePodSubnet6(mesh, i) },
  ];
  const ipOwner = new Map<string, WorkloadResource>();
  for (const { field, subnetOf } of families) {
    const subnets = new Map<number, Cidr | undefined>();
    const podNetOf = (w: WorkloadResource): Cidr | undefined => {
      const i = nodeOf.get(w)!;
      if (!subnets.has(i)) subnets.set(i, subnetOf(i));
      return subnets.get(i);
    };
    for (const w of workloads) {
      const podNet = podNetOf(w);
      const prev = stored.get(storeKey(w)) as WorkloadResource | undefined;
      const foreign = w.spec.adopt || w.spec.external; // addresses the mesh did not give
      if (!w.spec[field] && !foreign && prev?.spec[field] && podNet) w.spec[field] = prev.spec[field];
      const ip = w.spec[field];
      if (!ip) continue;
      if (!foreign && !podNet) problem(w, `spec.${field}`, `${ip}: the mesh is IPv4 only (the MeshConfig has no podCIDRv6)`);
      else if (!foreign && podNet && !containsAddress(podNet, ip)) problem(w, `spec.${field}`, `${ip} is outside this node's pod subnet ${formatCidr(podNet)}`);
      else if (!foreign && podNet && ip === hostAddress(podNet, 1)) problem(w, `spec.${field}`, `${ip} is the node's own address on the pod subnet`);
      const owner = ipOwner.get(ip);
      if (owner) problem(w, `spec.${field}`, `${ip} is already the address of ${describeResource(owner)}`);
      ipOwner.set(ip, w);
    }
    // One allocator per node subnet: a single forward scan each, however many workloads.
    const nextIp = new Map<string, () => string | undefined>();
    for (const w of workloads) {
      const podNet = podNetOf(w);
      if (!podNet || w.spec[field] || w.spec.adopt || w.spec.external) continue;
      const key = formatCidr(podNet);
      if (!nextIp.has(key)) nextIp.set(key, allocator(podNet, ipOwner, [1]));
      const ip = nextIp.get(key)!();
      if (!ip) { problem(w, `spec.${field}`, `the pod subnet ${formatCidr(podNet)} is full`); continue; }
      w.spec[field] = ip;
      ipOwner.set(ip, w);
    }
  }

  // Checks that need the whole picture, only for what this apply touches.
  // By label: a bulk apply checks 1,000s of Services against 10,000s of workloads.
  let index: WorkloadIndex | undefined;
  for (const s of services) {
    if (!touched.has(storeKey(s))) continue;
    const sel = s.spec.selector;
    if (!sel || Object.keys(sel).length === 0) continue; // a selector-less Service is allowed (no endpoints)
    if (!index) { index = new WorkloadIndex(); for (const w of workloads) index.add(w); }
    const members = index.selected(s);
    if (members.length === 0) {
      problem(s, 'spec.selector', `matches no Workload in namespace ${s.metadata.namespace}`);
    }
    s.spec.ports.forEach((p, i) => {
      if (typeof p.targetPort === 'string' && members.length && !members.some((w) => w.spec.ports.some((wp) => wp.name === p.targetPort && wp.protocol === p.protocol))) {
        problem(s, `spec.ports[${i}].targetPort`, `no selected Workload has a ${p.protocol} port named "${p.targetPort}"`);
      }
    });
  }
  for (const r of sorted) {
    const check = validators.get(r.kind);
    if (check) for (const p of check(r, all)) problem(r, p.field, p.message);
  }
  if (problems.length) throw new ResourceError(problems);

  const ops: Op[] = [];
  const results: ApplyResult[] = [];
  for (const r of sorted) {
    const key = storeKey(r);
    const next = after.get(key)!;
    const prev = stored.get(key);
    const action: ApplyAction = !prev ? 'created' : isDeepStrictEqual(prev, next) ? 'unchanged' : 'configured';
    if (action !== 'unchanged') ops.push({ type: 'put', key, value: next });
    results.push({ resource: describeResource(r), action });
  }
  await store.commit(ops);
  return results;
}

export async function deleteResources(store: Store, input: AnyResource[]): Promise<ApplyResult[]> {
  const ops: Op[] = [];
  const results: ApplyResult[] = [];
  for (const r of [...input].sort((a, b) => rank(b.kind) - rank(a.kind))) {
    const key = storeKey(r);
    if (!(await store.get(key))) {
      results.push({ resource: describeResource(r), action: 'not found' });
      continue;
    }
    ops.push({ type: 'delete', key });
    if (r.kind === 'Workload') ops.push({ type: 'delete', key: statusKey('Workload', r.metadata.namespace, r.metadata.name) });
    results.push({ resource: describeResource(r), action: 'deleted' });
  }
  await store.commit(ops);
  return results;
}

export { resourceKey };
