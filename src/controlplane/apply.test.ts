import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withStore } from '../../test/helpers/store.js';
import { parseResources, ResourceError } from '../resources/index.js';
import { applyResources, deleteResources } from './apply.js';
import { computeFrontends } from './lb.js';
import { readSnapshot, statusKey } from './state.js';

const wl = (name: string, labels: string, extra = '') =>
  `apiVersion: ebmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: ${name}, namespace: d, labels: {${labels}}}\nspec:\n  command: [sleep, infinity]\n  ports: [{name: http, containerPort: 8080}]\n${extra}---\n`;
const svc = (name: string, extra = '') =>
  `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: d}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n${extra}---\n`;

test('apply allocates VIPs and pod IPs, and is idempotent', withStore(async (store) => {
  const text = wl('a', 'app: web') + wl('b', 'app: web') + svc('web');
  const first = await applyResources(store, parseResources(text));
  assert.deepEqual(first.map((r) => r.action), ['created', 'created', 'created']);
  const again = await applyResources(store, parseResources(text));
  assert.deepEqual(again.map((r) => r.action), ['unchanged', 'unchanged', 'unchanged']);
  const snap = await readSnapshot(store);
  assert.equal(snap.services[0]?.spec.clusterIP, '10.96.0.1');
  assert.deepEqual(snap.workloads.map((w) => w.spec.ip).sort(), ['10.244.0.2', '10.244.0.3']);
}));

test('a duplicate VIP is refused and nothing of the file is applied', withStore(async (store) => {
  await applyResources(store, parseResources(wl('a', 'app: web') + svc('one', '  clusterIP: 10.96.0.10\n')));
  const before = await store.revision();
  await assert.rejects(
    applyResources(store, parseResources(wl('c', 'app: web') + svc('two', '  clusterIP: 10.96.0.10\n'), 'two.yaml'), 'two.yaml'),
    (e: unknown) => e instanceof ResourceError && /two.yaml: Service d\/two: spec.clusterIP: 10.96.0.10 is already the VIP of Service d\/one/.test(e.message),
  );
  assert.equal(await store.revision(), before);
  assert.equal((await readSnapshot(store)).workloads.length, 1);
}));

test('a selector that matches nothing and a VIP outside the CIDR are errors', withStore(async (store) => {
  await assert.rejects(applyResources(store, parseResources(svc('web'))), /spec.selector: matches no Workload in namespace d/);
  await assert.rejects(
    applyResources(store, parseResources(wl('a', 'app: web') + svc('web', '  clusterIP: 192.168.1.1\n'))),
    /spec.clusterIP: 192.168.1.1 is outside the service CIDR 10.96.0.0\/16/,
  );
}));

test('a NodePort Service is refused by ebmesh\'s own store, which allocates no node ports; nothing is applied', withStore(async (store) => {
  const before = await store.revision();
  await assert.rejects(
    applyResources(store, parseResources(wl('a', 'app: web') + svc('web', '  type: NodePort\n'))),
    /Service d\/web: spec.type: NodePort Services are served from Kubernetes/,
  );
  assert.equal(await store.revision(), before);
}));

test('only ready workloads are backends; named target ports resolve per workload', withStore(async (store) => {
  await applyResources(store, parseResources(wl('a', 'app: web') + wl('b', 'app: web') + wl('c', 'app: other') + svc('web')));
  const ready = (name: string, ip: string) => ({ type: 'put' as const, key: statusKey('Workload', 'd', name), value: { phase: 'Running', ready: true, ip } });
  await store.commit([ready('a', '10.244.0.2'), { type: 'put', key: statusKey('Workload', 'd', 'b'), value: { phase: 'Running', ready: false } }]);
  const [fe] = computeFrontends(await readSnapshot(store));
  assert.equal(fe?.vip, '10.96.0.1');
  assert.deepEqual(fe?.backends.map((b) => `${b.ip}:${b.port}`), ['10.244.0.2:8080']);
  await store.commit([ready('b', '10.244.0.3')]);
  assert.equal(computeFrontends(await readSnapshot(store))[0]?.backends.length, 2);
}));

test('delete removes resources and reports what was not there', withStore(async (store) => {
  const res = parseResources(wl('a', 'app: web') + svc('web'));
  await applyResources(store, res);
  const out = await deleteResources(store, res);
  assert.deepEqual(out.map((r) => r.action), ['deleted', 'deleted']);
  assert.deepEqual((await deleteResources(store, res)).map((r) => r.action), ['not found', 'not found']);
}));

test('the address plan cannot change under existing workloads', withStore(async (store) => {
  await applyResources(store, parseResources(wl('a', 'app: web')));
  const mesh = 'apiVersion: ebmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {serviceCIDR: 10.97.0.0/16}\n';
  await assert.rejects(applyResources(store, parseResources(mesh)), /spec.serviceCIDR: cannot change from 10.96.0.0\/16/);
}));

const dualMesh = 'apiVersion: ebmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {serviceCIDRv6: "fd00:eb:96::/112", podCIDRv6: "fd00:eb:244::/56"}\n---\n';

test('a dual-stack mesh: workloads get an IPv6 address beside the IPv4 one; Services one VIP per family as their policy says', withStore(async (store) => {
  const text = dualMesh + wl('a', 'app: web') + svc('single') + svc('prefer', '  ipFamilyPolicy: PreferDualStack\n')
    + svc('six', '  ipFamilies: [IPv6]\n') + svc('both', '  ipFamilies: [IPv6, IPv4]\n');
  await applyResources(store, parseResources(text));
  const snap = await readSnapshot(store);
  assert.deepEqual([snap.workloads[0]!.spec.ip, snap.workloads[0]!.spec.ipv6], ['10.244.0.2', 'fd00:eb:244::2']);
  const spec = (name: string) => {
    const s = snap.services.find((x) => x.metadata.name === name)!.spec;
    return [s.ipFamilyPolicy, s.ipFamilies, s.clusterIPs, s.clusterIP];
  };
  assert.deepEqual(spec('single'), ['SingleStack', ['IPv4'], ['10.96.0.1'], '10.96.0.1']);
  assert.deepEqual(spec('prefer'), ['PreferDualStack', ['IPv4', 'IPv6'], ['10.96.0.2', 'fd00:eb:96::1'], '10.96.0.2']);
  assert.deepEqual(spec('six'), ['SingleStack', ['IPv6'], ['fd00:eb:96::2'], 'fd00:eb:96::2']);
  assert.deepEqual(spec('both'), ['RequireDualStack', ['IPv6', 'IPv4'], ['fd00:eb:96::3', '10.96.0.3'], 'fd00:eb:96::3']);
  // The same file again changes nothing; a frontend per VIP, backends of its family.
  assert.ok((await applyResources(store, parseResources(text))).every((r) => r.action === 'unchanged'));
  const fes = computeFrontends({ ...snap, workloadStatus: new Map([['d/a', { phase: 'Running', ready: true }]]) });
  assert.deepEqual(fes.filter((f) => f.service === 'd/prefer').map((f) => [f.vip, f.backends.map((b) => b.ip)]),
    [['10.96.0.2', ['10.244.0.2']], ['fd00:eb:96::1', ['fd00:eb:244::2']]]);
}));

test('dual-stack upgrades and downgrades keep the VIPs of the families kept; the primary family stays', withStore(async (store) => {
  await applyResources(store, parseResources(dualMesh + wl('a', 'app: web') + svc('web', '  ipFamilyPolicy: RequireDualStack\n')));
  const vips = async () => (await readSnapshot(store)).services[0]!.spec.clusterIPs;
  assert.deepEqual(await vips(), ['10.96.0.1', 'fd00:eb:96::1']);
  await applyResources(store, parseResources(svc('web', '  ipFamilyPolicy: SingleStack\n')));
  assert.deepEqual(await vips(), ['10.96.0.1']);
  await applyResources(store, parseResources(svc('web', '  ipFamilyPolicy: PreferDualStack\n')));
  assert.deepEqual(await vips(), ['10.96.0.1', 'fd00:eb:96::1']);
  await assert.rejects(applyResources(store, parseResources(svc('web', '  ipFamilies: [IPv6]\n'))),
    /spec.ipFamilies: the primary family cannot change \(it is IPv4\)/);
  // A VIP given for each family, checked against each range.
  await applyResources(store, parseResources(svc('given', '  clusterIPs: ["fd00:eb:96::0:99", 10.96.0.99]\n')));
  const given = (await readSnapshot(store)).services.find((s) => s.metadata.name === 'given')!.spec;
  assert.deepEqual([given.ipFamilyPolicy, given.ipFamilies, given.clusterIPs], ['RequireDualStack', ['IPv6', 'IPv4'], ['fd00:eb:96::99', '10.96.0.99']]);
}));

test('IPv6 Services are refused with a clear error where the mesh or the Service cannot have them', withStore(async (store) => {
  await applyResources(store, parseResources(wl('a', 'app: web')));
  const before = await store.revision();
  await assert.rejects(applyResources(store, parseResources(svc('x', '  ipFamilies: [IPv6]\n'))),
    /Service d\/x: spec.ipFamilies\[0\]: IPv6 needs the MeshConfig's serviceCIDRv6: the mesh is IPv4 only/);
  await assert.rejects(applyResources(store, parseResources(svc('x', '  ipFamilyPolicy: RequireDualStack\n'))),
    /spec.ipFamilyPolicy: RequireDualStack needs a dual-stack mesh/);
  await assert.rejects(applyResources(store, parseResources(svc('x', '  clusterIP: "fd00::1"\n'))), /IPv6 needs the MeshConfig's serviceCIDRv6/);
  assert.throws(() => parseResources(svc('x', '  ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv4, IPv6]\n')), /spec.ipFamilyPolicy: SingleStack allows one family/);
  assert.throws(() => parseResources(svc('x', '  ipFamilies: [IPv4, IPv4]\n')), /spec.ipFamilies.1: IPv4 is listed twice|spec.ipFamilies\[1\]: IPv4 is listed twice/);
  assert.throws(() => parseResources(svc('x', '  clusterIPs: [10.96.0.5, 10.96.0.6]\n')), /two IPv4 addresses: a Service has one VIP per family/);
  assert.throws(() => parseResources(svc('x', '  clusterIPs: ["::ffff:10.96.0.5"]\n')), /must be an IPv4 or IPv6 address/);
  assert.throws(() => parseResources(svc('x', '  clusterIP: 10.96.0.5\n  clusterIPs: [10.96.0.6]\n')), /spec.clusterIP: must be clusterIPs\[0\] \(10.96.0.6\)/);
  assert.throws(() => parseResources(svc('x', '  ipFamilies: [IPv4]\n  clusterIPs: ["fd00::5"]\n')), /fd00::5 is IPv6, but ipFamilies\[0\] is IPv4/);
  assert.equal(await store.revision(), before, 'nothing was applied');
  // A workload's IPv6 address on an IPv4-only mesh, and MeshConfig ranges that do not go together.
  await assert.rejects(applyResources(store, parseResources(wl('b', 'app: x', '  ipv6: "fd00::5"\n'))), /spec.ipv6: fd00::5: the mesh is IPv4 only/);
  assert.throws(() => parseResources('apiVersion: ebmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {serviceCIDRv6: "fd00:1::/112"}\n'),
    /spec.podCIDRv6: serviceCIDRv6 and podCIDRv6 go together/);
  assert.throws(() => parseResources('apiVersion: ebmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {serviceCIDRv6: "fd00:1::/112", podCIDRv6: "fd00::/16"}\n'),
    /spec.podCIDRv6: overlaps serviceCIDRv6/);
  assert.throws(() => parseResources('apiVersion: ebmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {serviceCIDRv6: "10.0.0.0/16", podCIDRv6: "fd00::/56"}\n'),
    /spec.serviceCIDRv6: must be an IPv6 CIDR/);
}));

test('a dual-stack workload address outside its node\'s IPv6 subnet, or another\'s, is refused', withStore(async (store) => {
  await assert.rejects(applyResources(store, parseResources(dualMesh + wl('a', 'app: web', '  ipv6: "fd00:eb:245::5"\n'))),
    /spec.ipv6: fd00:eb:245::5 is outside this node's pod subnet fd00:eb:244::\/64/);
  await assert.rejects(applyResources(store, parseResources(dualMesh + wl('a', 'app: web', '  ipv6: "fd00:eb:244::1"\n'))),
    /spec.ipv6: fd00:eb:244::1 is the node's own address on the pod subnet/);
  await applyResources(store, parseResources(dualMesh + wl('a', 'app: web', '  ipv6: "FD00:EB:244::0:7"\n')));
  assert.equal((await readSnapshot(store)).workloads[0]!.spec.ipv6, 'fd00:eb:244::7', 'stored in canonical text');
  await assert.rejects(applyResources(store, parseResources(wl('b', 'app: web', '  ipv6: "fd00:eb:244::7"\n'))),
    /spec.ipv6: fd00:eb:244::7 is already the address of Workload d\/a/);
}));
