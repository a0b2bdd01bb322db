import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterRanges, endpointsOfSlices, meshOf, optedOut, passThrough, routeOf, serviceOf, sliceService, withoutSctp, workloadOfPod, type Problem } from './translate.js';
import type { K8sEndpointSlice, K8sPod, K8sService } from './kinds.js';
import { podCgroupCandidates } from './pod-cgroup.js';
import { routeParentStatuses, mergeParents } from './route-status.js';

const pod = (over: Partial<K8sPod['spec']> = {}, status: K8sPod['status'] = { phase: 'Running', podIP: '10.252.0.5', conditions: [{ type: 'Ready', status: 'True' }] }): K8sPod => ({
  metadata: { name: 'web-1', namespace: 'demo', uid: 'u-1', labels: { app: 'web' } },
  spec: { nodeName: 'n1', serviceAccountName: 'web', containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }, { containerPort: 9000, protocol: 'SCTP' }] }], ...over },
  status,
});

test('a pod on this node in the mesh is adopted by its cgroup; elsewhere it is an external backend; without an address or on the host network it is none', () => {
  const p: Problem[] = [];
  const local = workloadOfPod(pod(), '/cg/kubepods/podu-1', p);
  assert.deepEqual(local?.workload.spec.adopt, { cgroup: '/cg/kubepods/podu-1' });
  assert.equal(local?.workload.spec.ip, '10.252.0.5');
  assert.equal(local?.workload.spec.serviceAccount, 'web');
  assert.deepEqual(local?.workload.spec.ports, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }], 'SCTP ports are not served');
  assert.equal(local?.status.ready, true);
  assert.equal(workloadOfPod(pod(), undefined, p)?.workload.spec.external, true);
  assert.equal(workloadOfPod(pod({ hostNetwork: true }), undefined, p), undefined);
  assert.equal(workloadOfPod(pod({}, { phase: 'Pending' }), undefined, p), undefined);
  assert.equal(workloadOfPod(pod({}, { phase: 'Succeeded', podIP: '10.252.0.5' }), undefined, p), undefined);
  assert.deepEqual(p, []);
});

test('NodePort and LoadBalancer Services keep their type and the node ports the API server allocated; a ClusterIP one has none', () => {
  const p: Problem[] = [];
  const port = { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP', nodePort: 30080 };
  for (const type of ['NodePort', 'LoadBalancer'] as const) {
    const s = serviceOf(svc({ type, ports: [port] }), 'ebmesh', p);
    assert.equal(s?.spec.type, type);
    assert.equal(s?.spec.ports[0]?.nodePort, 30080);
  }
  const c = serviceOf(svc({ type: 'ClusterIP', ports: [port] }), 'ebmesh', p);
  assert.equal(c?.spec.type, 'ClusterIP');
  assert.equal(c?.spec.ports[0]?.nodePort, undefined, 'a node port left from a type change is not served');
  assert.deepEqual(p, []);
});

test('opting out: a label or annotation ebmesh.io/mesh=disabled', () => {
  assert.equal(optedOut({ metadata: { name: 'x', labels: { 'ebmesh.io/mesh': 'disabled' } } }), true);
  assert.equal(optedOut({ metadata: { name: 'x', annotations: { 'ebmesh.io/mesh': 'disabled' } } }), true);
  assert.equal(optedOut({ metadata: { name: 'x' } }), false);
  assert.equal(optedOut(undefined), false);
});

const svc = (spec: Partial<K8sService['spec']>, labels?: Record<string, string>): K8sService => ({
  metadata: { name: 'web', namespace: 'demo', ...(labels ? { labels } : {}) },
  spec: { type: 'ClusterIP', clusterIP: '10.253.0.7', ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }], selector: { app: 'web' }, ...spec },
});

test('Services: ClusterIP of any type is served; headless, ExternalName and another proxy\'s are not; affinity keeps its timeout', () => {
  const p: Problem[] = [];
  const s = serviceOf(svc({ type: 'NodePort', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 30 } } }), 'ebmesh', p);
  assert.equal(s?.spec.clusterIP, '10.253.0.7');
  assert.equal(s?.spec.sessionAffinity, 'ClientIP');
  assert.equal(s?.spec.sessionAffinityConfig?.clientIP.timeoutSeconds, 30);
  assert.equal(serviceOf(svc({ clusterIP: 'None' }), 'ebmesh', p), undefined);
  assert.equal(serviceOf(svc({ type: 'ExternalName' }), 'ebmesh', p), undefined);
  assert.equal(serviceOf(svc({}, { 'service.kubernetes.io/service-proxy-name': 'other' }), 'ebmesh', p), undefined);
  assert.ok(serviceOf(svc({}, { 'service.kubernetes.io/service-proxy-name': 'ebmesh' }), 'ebmesh', p), 'labelled for us: ours');
  assert.equal(serviceOf(svc({ ports: [{ port: 9, protocol: 'SCTP' }] }), 'ebmesh', p), undefined, 'SCTP only: nothing to serve');
  // A Service port's name is a DNS label (up to 63), not a 15-character IANA name (the NetworkPolicy e2e suite names its ports so).
  const long = serviceOf(svc({ ports: [{ name: 'service-port-tcp-80', port: 80, targetPort: 80, protocol: 'TCP' }] }), 'ebmesh', p);
  assert.equal(long?.spec.ports[0]?.name, 'service-port-tcp-80');
  assert.deepEqual(p, []);
  const bad: Problem[] = [];
  assert.equal(serviceOf(svc({ ports: [{ name: 'Not_A_Label', port: 80, protocol: 'TCP' }] }), 'ebmesh', bad), undefined);
  assert.deepEqual(bad.map((x) => x.field), ['spec.ports[0].name']);
});

test('EndpointSlices: conditions default as Kubernetes says (ready unset = ready, serving = ready, not terminating), one entry per address', () => {
  const sl = (name: string, endpoints: K8sEndpointSlice['endpoints'], addressType: K8sEndpointSlice['addressType'] = 'IPv4'): K8sEndpointSlice => ({
    metadata: { name, namespace: 'demo', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType, endpoints, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  });
  const eps = endpointsOfSlices([
    sl('a', [{ addresses: ['10.252.0.5'], targetRef: { kind: 'Pod', name: 'web-1' } }, { addresses: ['10.252.0.6'], conditions: { ready: false, serving: true, terminating: true } }]),
    sl('b', [{ addresses: ['10.252.0.5'], targetRef: { kind: 'Pod', name: 'web-1' } }]),
  ]);
  assert.equal(sliceService(sl('a', [])), 'demo/web');
  assert.deepEqual(eps.map((e) => [e.ip, e.ready, e.serving, e.terminating, e.workload]), [
    ['10.252.0.5', true, true, false, 'demo/web-1'],
    ['10.252.0.6', false, true, true, undefined],
  ]);
  assert.deepEqual(eps[0]!.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
});

test('a NetworkPolicy from a list (no apiVersion on items) fits the standard schema; a bad one is a problem naming its field', () => {
  const p: Problem[] = [];
  const ok = passThrough('NetworkPolicy', { metadata: { name: 'deny', namespace: 'demo', uid: 'x', resourceVersion: '5' }, spec: { podSelector: {}, policyTypes: ['Ingress'] } }, p);
  assert.equal(ok?.kind, 'NetworkPolicy');
  assert.deepEqual(p, []);
  const q: Problem[] = [];
  passThrough('NetworkPolicy', { metadata: { name: 'bad', namespace: 'demo' }, spec: { podSelector: {}, ingress: [{ ports: [{ port: 70000 }] }] } }, q);
  assert.equal(q.length, 1);
  assert.equal(q[0]!.field, 'spec.ingress[0].ports[0].port');
});

test('routes: only Service parents are the mesh\'s; an unsupported filter leaves the route out with Accepted False naming the field', () => {
  const p: Problem[] = [];
  const gatewayOnly = { metadata: { name: 'r', namespace: 'demo' }, spec: { parentRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'gw' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] } };
  assert.equal(routeOf('HTTPRoute', gatewayOnly, p), undefined);
  const bad = { metadata: { name: 'r', namespace: 'demo', generation: 3 }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ filters: [{ type: 'ExtensionRef', extensionRef: { group: 'x', kind: 'Y', name: 'z' } }], backendRefs: [{ name: 'gone', port: 80 }] }] } };
  assert.equal(routeOf('HTTPRoute', bad, p), undefined);
  assert.match(p[0]!.field ?? '', /^spec\.rules\[0\]\.filters\[0\]/);
  const statuses = routeParentStatuses(bad, p, new Map([['demo/web', new Set([80])]]));
  assert.equal(statuses.length, 1);
  const [accepted, resolved] = statuses[0]!.conditions;
  assert.deepEqual([accepted!.status, accepted!.reason, accepted!.observedGeneration], ['False', 'UnsupportedValue', 3]);
  assert.deepEqual([resolved!.status, resolved!.reason], ['False', 'BackendNotFound']);
});

test('route status: another controller\'s entry is kept; a condition keeps its transition time while its status holds; nothing new, no write', () => {
  const other = { parentRef: { name: 'gw' }, controllerName: 'example.com/gw', conditions: [] };
  const mine = routeParentStatuses({ metadata: { name: 'r', namespace: 'demo', generation: 1 }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] } }, [], new Map([['demo/web', new Set([80])]]));
  const first = mergeParents([other], mine, 't1')!;
  assert.equal(first.length, 2);
  assert.equal(first[1]!.conditions[0]!.lastTransitionTime, 't1');
  assert.equal(mergeParents(first, mine, 't2'), undefined, 'the same status again writes nothing');
});

test('the MeshConfig: the install\'s CIDRs, overridden by the cluster\'s object named mesh', () => {
  const p: Problem[] = [];
  const base = meshOf(undefined, { serviceCIDR: '10.253.0.0/16', podCIDR: '10.252.0.0/16' }, p);
  assert.equal(base.spec.serviceCIDR, '10.253.0.0/16');
  const over = meshOf({ metadata: { name: 'mesh' }, spec: { sameNodeShortcut: false } }, { serviceCIDR: '10.253.0.0/16' }, p);
  assert.equal(over.spec.sameNodeShortcut, false);
  assert.equal(over.spec.serviceCIDR, '10.253.0.0/16');
});

test('the install\'s ranges in the cluster\'s own form: one CIDR, or one of each family in either order (dual-stack); a bad one names its flag', () => {
  assert.deepEqual(clusterRanges({ serviceCIDR: '10.253.0.0/16', podCIDR: '10.252.0.0/16' }), { ranges: { serviceCIDR: '10.253.0.0/16', podCIDR: '10.252.0.0/16' }, problems: [] });
  const dual = clusterRanges({ serviceCIDR: '10.253.0.0/16,fd00:eb:253::/112', podCIDR: 'fd00:eb:252::/56, 10.252.0.0/16' });
  assert.deepEqual(dual, { ranges: { serviceCIDR: '10.253.0.0/16', serviceCIDRv6: 'fd00:eb:253::/112', podCIDR: '10.252.0.0/16', podCIDRv6: 'fd00:eb:252::/56' }, problems: [] });
  assert.equal(meshOf(undefined, dual.ranges, []).spec.podCIDRv6, 'fd00:eb:252::/56');
  assert.deepEqual(clusterRanges({}), { ranges: {}, problems: [] });
  const bad = (f: { serviceCIDR?: string; podCIDR?: string }) => clusterRanges(f).problems.join('; ');
  assert.match(bad({ serviceCIDR: '10.1.0.0/16,10.2.0.0/16' }), /^--service-cidr: .* two CIDRs of one family/);
  assert.match(bad({ podCIDR: 'fd00::/56' }), /^--pod-cidr: .* no IPv4 CIDR/);
  assert.match(bad({ podCIDR: '10.1.0.0/16,,fd00::/56' }), /^--pod-cidr: .* one CIDR or two/);
  assert.match(bad({ serviceCIDR: '10.253.0.0/16,fd00:eb:253::/112' }), /^--pod-cidr: podCIDRv6: serviceCIDRv6 and podCIDRv6 go together/);
  assert.match(bad({ serviceCIDR: '10.300.0.0/16' }), /^--service-cidr: serviceCIDR: /);
});

test('pod cgroups: cgroupfs and systemd layouts for each QoS class', () => {
  assert.deepEqual(podCgroupCandidates('a-b', 'BestEffort'), ['kubepods/besteffort/poda-b', 'kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-poda_b.slice']);
  assert.deepEqual(podCgroupCandidates('a-b', 'Guaranteed'), ['kubepods/poda-b', 'kubepods.slice/kubepods-poda_b.slice']);
  assert.deepEqual(podCgroupCandidates('a-b', 'Burstable')[0], 'kubepods/burstable/poda-b');
});

test('a NetworkPolicy with SCTP ports still isolates its pods: the SCTP ports go, a rule of SCTP ports only goes (it opens nothing ebmesh judges)', () => {
  // The NetworkPolicy e2e suite's "should properly isolate pods that are selected by a policy allowing SCTP".
  const np = (spec: object) => ({ metadata: { name: 'allow-sctp', namespace: 'demo', uid: 'np-1' }, spec });
  const p: Problem[] = [];
  const only = passThrough('NetworkPolicy', np({ podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'], ingress: [{ ports: [{ port: 80, protocol: 'SCTP' }] }] }), p) as { spec: { ingress: unknown[]; policyTypes: string[] } } | undefined;
  assert.deepEqual(p, []);
  assert.deepEqual(only?.spec.ingress, [], 'the pod is selected and nothing is allowed in');
  assert.deepEqual(only?.spec.policyTypes, ['Ingress']);
  const mixed = withoutSctp({ ingress: [{ ports: [{ protocol: 'SCTP' }, { protocol: 'TCP' }] }, {}], egress: [{ ports: [{ protocol: 'SCTP' }] }] });
  assert.deepEqual(mixed, { policyTypes: ['Ingress', 'Egress'], ingress: [{ ports: [{ protocol: 'TCP' }] }, {}], egress: [] }, 'egress stays isolated though its only rule went');
  const none = { ingress: [{ ports: [{ protocol: 'UDP' }] }] };
  assert.equal(withoutSctp(none), none, 'a policy without SCTP is as it was');
});
