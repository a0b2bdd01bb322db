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
