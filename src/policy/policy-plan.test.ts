import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Namespace, Workload } from '../resources/schemas.js';
import { NetworkPolicy } from '../resources/networkpolicy.js';
import { allocateIdentities, compilePolicies } from './index.js';
import { applyToContents, emptyPolicyContents, encodePolicy, planPolicy } from './policy-plan.js';

const wl = (name: string, ip: string) => Workload.parse({ apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload', metadata: { name, namespace: 'x', labels: { pod: name } }, spec: { ip, ports: [{ containerPort: 80 }], command: ['true'] } });
const workloads = [wl('a', '10.0.0.10'), wl('b', '10.0.0.11')];
const namespaces = [Namespace.parse({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } })];
const identities = allocateIdentities(undefined, workloads, { now: 0 });
const only80 = NetworkPolicy.parse({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'b', namespace: 'x' },
  spec: { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } } }], ports: [{ port: 80 }] }] } });
const contents = (policies: NetworkPolicy[]) => encodePolicy(compilePolicies({ policies, namespaces, workloads, identities }), [{ cgroupId: 42n, identity: 256, ip: '10.0.0.10' }]);

test('the same state twice plans no write (a restart rewrites nothing)', () => {
  const c = contents([only80]);
  assert.deepEqual(planPolicy(c, contents([only80])), []);
});

test('isolating: allows land before the isolation; un-isolating: isolation goes before the allows', () => {
  const none = contents([]);
  const some = contents([only80]);
  const up = planPolicy(none, some);
  const firstIso = up.findIndex((o) => o.map === 'isolation');
  const lastAllow = up.map((o) => o.map).lastIndexOf('allow');
  assert.ok(lastAllow >= 0 && firstIso > lastAllow, JSON.stringify(up));
  const down = planPolicy(some, none);
  assert.ok(down.findIndex((o) => o.map === 'isolation') < down.findIndex((o) => o.map === 'allow'), JSON.stringify(down));
  assert.ok(down.every((o) => o.op === 'del'));
  const mirror = structuredClone(some);
  applyToContents(mirror, down);
  assert.deepEqual(mirror, { ...emptyPolicyContents(), ipcache: none.ipcache, endpoints: none.endpoints });
});
