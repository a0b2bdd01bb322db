import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withStore } from '../../test/helpers/store.js';
import { parseResources, ResourceError } from '../resources/index.js';
import { applyResources, deleteResources } from './apply.js';
import { computeFrontends } from './lb.js';
import { computeProxyConfig } from './l7.js';
import { readSnapshot } from './state.js';
import { planLb } from '../agent/lb-plan.js';
import { FRONTEND_F_L7 } from '../abi/structs.js';
import { divideForWorkers } from '../proxy/messages.js';

const base = `apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: a, namespace: d, labels: {app: web}}
spec: {adopt: {cgroup: x}, ip: 10.244.0.9, ports: [{name: http, containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: d}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}, {name: admin, port: 81, targetPort: 8080, appProtocol: grpc}]}
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: d}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
`;
const route = (extra = '', parent = 'web', backend = 'web') => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: d}
spec:
  parentRefs: [{kind: Service, name: ${parent}${extra}}]
  rules: [{backendRefs: [{name: ${backend}, port: 80}]}]
`;

test('kinds are registered: a route applies, and names a missing parent or backend with its field', withStore(async (store) => {
  await applyResources(store, parseResources(base));
  await assert.rejects(applyResources(store, parseResources(route('', 'nope'), 'r.yaml'), 'r.yaml'), (e: ResourceError) => {
    assert.match(e.message, /HTTPRoute d\/r.*spec\.parentRefs\[0\]\.name.*Service d\/nope does not exist/s);
    return true;
  });
  await assert.rejects(applyResources(store, parseResources(route('', 'web', 'gone'))), /spec\.rules\[0\]\.backendRefs\[0\]\.name.*Service d\/gone does not exist/s);
  await assert.rejects(applyResources(store, parseResources(route(', port: 99'))), /Service d\/web has no port 99/);
  const pol = `apiVersion: ebmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: d}\nspec: {targetRef: {kind: Service, name: ghost}, action: DENY, rules: [{name: all}]}\n`;
  await assert.rejects(applyResources(store, parseResources(pol)), /spec\.targetRef\.name.*Service d\/ghost does not exist/s);
  assert.equal((await readSnapshot(store)).others.size, 0, 'nothing was applied');
}));

test('a route flags its parent Service for the proxy (only the parentRef port), and deleting it clears the flag', withStore(async (store) => {
  await applyResources(store, parseResources(base));
  assert.ok(computeFrontends(await readSnapshot(store)).every((f) => !f.l7));

  await applyResources(store, parseResources(route(', port: 80')));
  let snap = await readSnapshot(store);
  const flagged = computeFrontends(snap).filter((f) => f.l7).map((f) => `${f.service}:${f.port}`);
  assert.deepEqual(flagged, ['d/web:80']);
  const ops = planLb({ frontends: [], slots: new Map(), backends: new Map() }, computeFrontends(snap));
  const fe = ops.find((o) => o.op === 'putFrontend' && o.key.port === 80 && o.value.flags & FRONTEND_F_L7);
  assert.ok(fe, 'the kernel frontend carries EBM_FRONTEND_F_L7');

  const cfg = computeProxyConfig(snap);
  assert.deepEqual(cfg.steered, ['d/web:80']);
  assert.equal(cfg.httpRoutes?.length, 1);
  assert.deepEqual(cfg.services.map((s) => `${s.name}:${s.port}:${s.protocol}:${s.endpoints.map((e) => `${e.ip}:${e.port}`).join(',')}`),
    ['other:80:auto:10.244.0.9:8080', 'web:80:auto:10.244.0.9:8080', 'web:81:http2:10.244.0.9:8080']);

  await deleteResources(store, parseResources(route(', port: 80')));
  snap = await readSnapshot(store);
  assert.ok(computeFrontends(snap).every((f) => !f.l7));
  assert.deepEqual(computeProxyConfig(snap).steered, []);
}));

test('a policy on a Service steers all its ports; a policy on a route steers that route\'s parents', withStore(async (store) => {
  await applyResources(store, parseResources(base));
  const tp = (kind: string, name: string) => `apiVersion: ebmesh.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: t, namespace: d}\nspec: {targetRef: {group: "${kind === 'Service' ? '' : 'gateway.networking.k8s.io'}", kind: ${kind}, name: ${name}}, rateLimit: {total: {requests: 10, per: 1s}}}\n`;
  await applyResources(store, parseResources(tp('Service', 'other')));
  assert.deepEqual(computeProxyConfig(await readSnapshot(store)).steered, ['d/other:80']);
  await applyResources(store, parseResources(route() + '---\n' + tp('HTTPRoute', 'r')));
  assert.deepEqual(computeProxyConfig(await readSnapshot(store)).steered, ['d/web:80', 'd/web:81']);
}));

test('limits are divided among proxy workers, never below one', () => {
  const out = divideForWorkers({
    services: [], limits: { maxConcurrentRequests: 10 },
    trafficPolicies: [{ apiVersion: 'ebmesh.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 't', namespace: 'd' },
      spec: { targetRef: { group: '', kind: 'Service', name: 's' }, rateLimit: { total: { requests: 100, per: '1s', burst: 1 } }, circuitBreaker: { maxConnections: 8, maxPendingRequests: 3, maxRequests: 9 } } }],
  } as never, 4);
  assert.equal(out.limits?.maxConcurrentRequests, 2);
  assert.equal(out.limits?.maxConcurrentPerNamespace, 64); // 256 / 4
  const spec = out.trafficPolicies![0]!.spec;
  assert.equal(spec.rateLimit?.total?.requests, 25);
  assert.equal(spec.rateLimit?.total?.burst, 1);
  assert.deepEqual(spec.circuitBreaker, { maxConnections: 2, maxPendingRequests: 1, maxRequests: 2 });
});

test('the incremental FrontendIndex follows routes as they come and go (every Service recomputed then)', withStore(async (store) => {
  const { FrontendIndex } = await import('./frontend-index.js');
  const index = new FrontendIndex();
  await applyResources(store, parseResources(base));
  let snap = await readSnapshot(store);
  assert.deepEqual(index.compute(snap), computeFrontends(snap));
  await applyResources(store, parseResources(route(', port: 80')));
  snap = await readSnapshot(store);
  assert.deepEqual(index.compute(snap), computeFrontends(snap));
  assert.ok(index.compute(snap).some((f) => f.l7));
  await deleteResources(store, parseResources(route(', port: 80')));
  snap = await readSnapshot(store);
  assert.deepEqual(index.compute(snap), computeFrontends(snap));
  assert.ok(index.compute(snap).every((f) => !f.l7));
}));
