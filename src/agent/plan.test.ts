import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withStore } from '../../test/helpers/store.js';
import { parseResources } from '../resources/index.js';
import { applyResources, readSnapshot, remoteView, statusKey, storeKey, FrontendIndex, type Snapshot } from '../controlplane/index.js';
import { emptyIdentityTable } from '../policy/index.js';
import { planNode, type NodeContext, type Observed } from './plan.js';
import type { Store } from '../store/index.js';

const ctx: NodeContext = {
  nodeName: 'node-1', nodeIndex: 0, routePodCIDR: false,
  nodes: [{ name: 'node-1', index: 0 }, { name: 'node-2', index: 1 }],
  nodeAddress: (i) => `192.168.77.${i + 1}`,
  cgroupRoot: '/cg', meshCgroup: '/cg/ebmesh.t', svidDir: '/state/node-svid',
};
const none: Observed = { nodeSvid: false, identities: emptyIdentityTable() };

const world = `
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: web-1, namespace: d, labels: {app: web}}
spec: {command: [sleep, infinity], ports: [{name: http, containerPort: 8080}]}
---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: d, labels: {app: client}}
spec: {command: [sleep, infinity]}
---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: legacy, namespace: d, labels: {app: legacy}}
spec: {adopt: {cgroup: system.slice/legacy.service}, ip: 10.244.0.50}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: d}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: d}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
`;

/** The world applied, with web-1 running and ready (as the lab would report). */
async function snapshot(store: Store): Promise<Snapshot> {
  await applyResources(store, parseResources(world));
  const snap = await readSnapshot(store);
  const web = snap.workloads.find((w) => w.metadata.name === 'web-1')!;
  await store.commit([{ type: 'put', key: statusKey('Workload', 'd', 'web-1'), value: { phase: 'Running', ready: true, ip: web.spec.ip } }]);
  return readSnapshot(store);
}

test('the plan puts every workload cgroup of the node in the policy maps, lab and adopted, with its identity', withStore(async (store) => {
  const plan = planNode(await snapshot(store), ctx, none);
  const byName = new Map(plan.policy.endpoints.map((e) => [e.workload, e]));
  assert.equal(byName.get('d/web-1')?.cgroup, '/cg/ebmesh.t/workloads/d.web-1');
  assert.equal(byName.get('d/legacy')?.cgroup, '/cg/system.slice/legacy.service', 'a relative adopted cgroup is taken below the cgroup root');
  assert.equal(byName.get('d/legacy')?.ip, '10.244.0.50');
  const ids = new Set(plan.policy.endpoints.map((e) => e.identity));
  assert.equal(ids.size, 3, 'three label sets, three identities');
  assert.deepEqual(plan.adopt, [{ tag: 'adopt_d_legacy', cgroup: '/cg/system.slice/legacy.service' }]);
  assert.deepEqual(plan.lab.map((w) => w.metadata.name).sort(), ['client', 'web-1']);
  assert.equal(plan.bridge, true);
  assert.equal(plan.policy.tables.refs.includes('d/web-in'), true, 'the policy is compiled into the plan');
}));

test('the plan keeps identities already allocated, and allocates only new ones', withStore(async (store) => {
  const snap = await snapshot(store);
  const first = planNode(snap, ctx, none);
  const again = planNode(snap, ctx, { nodeSvid: false, identities: first.policy.identities });
  assert.deepEqual(again.policy.identities, first.policy.identities);
  assert.deepEqual(again.policy.endpoints, first.policy.endpoints);
}));

test('the plan is pure: the same inputs give the same plan, with or without its caches', withStore(async (store) => {
  const snap = await snapshot(store);
  const plain = planNode(snap, ctx, none);
  const memo = { frontends: new FrontendIndex() };
  const cached = planNode(snap, ctx, none, memo);
  const cachedAgain = planNode(snap, ctx, none, memo);
  for (const p of [cached, cachedAgain]) {
    assert.deepEqual(p.frontends, plain.frontends);
    assert.deepEqual(p.policy, plain.policy);
    assert.deepEqual(p.proxy, plain.proxy);
  }
}));

test('the plan gives the Service its ready backends, and no tunnel without the node SVID', withStore(async (store) => {
  const plan = planNode(await snapshot(store), ctx, none);
  const web = plan.frontends.find((f) => f.service === 'd/web');
  assert.ok(web);
  assert.equal(web.port, 80);
  assert.deepEqual(web.backends.map((b) => [b.workload, b.port]), [['d/web-1', 8080]]);
  assert.equal(plan.proxy.tunnel, undefined);
  assert.deepEqual(plan.tunnelDsts, []);
  assert.deepEqual(plan.hostRoutes, ['10.96.0.0/16', '10.244.0.0/16']);
}));

test('with the node SVID, a remote workload is tunnelled to its node, and the endpoint gets this plan\'s policy', withStore(async (store) => {
  const snap = await snapshot(store);
  // Another node's lab workload, as this node's view holds it (controlplane/nodes.ts remoteView): no command, its node's address.
  const web = snap.workloads.find((w) => w.metadata.name === 'web-1')!;
  const far = remoteView({ ...web, metadata: { ...web.metadata, name: 'far' }, spec: { ...web.spec, node: 'node-2', ip: '10.244.1.9' } });
  await store.commit([{ type: 'put', key: storeKey(far), value: far }]);
  // This node's view: its own workloads in full, the other node's as remote views.
  const view = { localWorkloads: new Set(snap.workloads.map((w) => `${w.metadata.namespace}/${w.metadata.name}`)) };
  assert.equal(snap.workloads.length + 1, (await readSnapshot(store, view)).workloads.length);
  const plan = planNode(await readSnapshot(store, view), ctx, { ...none, nodeSvid: true });
  assert.deepEqual(plan.tunnelDsts, ['10.244.1.9']);
  const t = plan.proxy.tunnel;
  assert.ok(t);
  assert.deepEqual(t.peers, [['10.244.1.0/24', 'node-2', '192.168.77.2']]);
  assert.ok(t.localIps.length >= 2, 'this node\'s workloads are where the endpoint delivers');
  assert.ok(t.policy && t.policy.refs.includes('d/web-in'), 'the endpoint judges with the same compiled tables');
}));
