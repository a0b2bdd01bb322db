import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { kindOfWord, parseResources, ResourceError } from './index.js';
import { PACKAGE_ROOT } from '../paths.js';

function problemsOf(text: string): string[] {
  try {
    parseResources(text, 'in.yaml');
  } catch (e) {
    assert.ok(e instanceof ResourceError);
    return e.message.split('\n');
  }
  assert.fail('expected a ResourceError');
}

const svc = (spec: string) => `apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: demo\nspec:\n${spec}`;

test('the demo and scale examples parse, List items included', () => {
  const demo = parseResources(readFileSync(`${PACKAGE_ROOT}/examples/demo.yaml`, 'utf8'));
  assert.deepEqual(demo.map((r) => `${r.kind}/${r.metadata.name}`), [
    'Namespace/demo', 'Workload/web-1', 'Workload/web-2', 'Workload/web-3', 'Service/web', 'Workload/client',
  ]);
  const w2 = demo[2];
  assert.equal(w2?.kind, 'Workload');
  assert.equal(parseResources(readFileSync(`${PACKAGE_ROOT}/examples/demo-scale.yaml`, 'utf8')).length, 1);
});

test('defaults are filled as Kubernetes does', () => {
  const [s] = parseResources(svc('  selector: {app: web}\n  ports: [{port: 80}]'));
  assert.equal(s?.kind, 'Service');
  if (s?.kind !== 'Service') return;
  assert.equal(s.spec.ports[0]?.protocol, 'TCP');
  assert.equal(s.spec.type, 'ClusterIP');
  assert.equal(s.spec.sessionAffinity, 'None');
});

test('a node port on a ClusterIP Service, and an unknown type, name the field', () => {
  assert.match(problemsOf(svc('  selector: {app: web}\n  ports: [{port: 80, nodePort: 30080}]'))[0] ?? '', /spec.ports\[0\].nodePort: a node port needs type NodePort or LoadBalancer/);
  assert.match(problemsOf(svc('  type: ExternalName\n  ports: [{port: 80}]'))[0] ?? '', /spec.type: must be ClusterIP, NodePort or LoadBalancer/);
});

test('a port out of range names file, line, resource and field', () => {
  const [p] = problemsOf(svc('  selector: {app: web}\n  ports:\n    - port: 70000'));
  assert.equal(p, 'in.yaml:9: Service demo/web: spec.ports[0].port: must be a port from 1 to 65535');
});

test('unknown fields are errors, not silently dropped', () => {
  const [p] = problemsOf(svc('  selector: {app: web}\n  ports: [{port: 80}]\n  loadBalancerIP: 1.2.3.4'));
  assert.match(p!, /Service demo\/web: spec: unknown field "loadBalancerIP"/);
});

test('unknown kinds, SCTP and bad names are explained', () => {
  assert.match(problemsOf('apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n')[0]!, /in.yaml:2: kind: unknown kind "Pod"/);
  assert.match(problemsOf(svc('  ports: [{port: 80, protocol: SCTP}]'))[0]!, /SCTP is not supported/);
  assert.match(problemsOf('apiVersion: v1\nkind: Namespace\nmetadata: {name: Bad_Name}\n')[0]!, /metadata.name: must be a DNS label/);
});

test('a kind named after an Object property is an unknown kind, not a crash (found by fuzzing)', () => {
  for (const kind of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
    assert.match(problemsOf(`apiVersion: v1\nkind: ${kind}\nmetadata: {name: x}\n`)[0]!, new RegExp(`in.yaml:2: kind: unknown kind "${kind}"`));
    assert.equal(kindOfWord(kind), undefined, kind);
  }
  // A name that is a mapping whose key is toString made String() throw while naming the resource.
  assert.match(problemsOf('apiVersion: v1\nkind: Service\nmetadata:\n  name:\n    toString: [1]\n')[0]!, /Service default\/\?: metadata\.name: Expected string/);
  assert.equal(kindOfWord('svc'), 'Service');
  assert.equal(kindOfWord('HTTPRoute'), 'HTTPRoute');
});

test('one bad document rejects the whole input', () => {
  const text = `apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\n${svc('  ports: []')}`;
  const problems = problemsOf(text);
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /a Service needs at least one port/);
});

test('YAML syntax errors and the same object twice are reported', () => {
  assert.match(problemsOf('kind: [unclosed\n')[0]!, /in.yaml:\d+: YAML:/);
  const ns = 'apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n';
  assert.match(problemsOf(`${ns}---\n${ns}`)[0]!, /Namespace a: appears twice/);
});

test('a Workload must run a command or adopt a cgroup, with an ip when adopted', () => {
  const base = 'apiVersion: ebmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: w}\nspec:\n';
  assert.match(problemsOf(`${base}  serviceAccount: x\n`)[0]!, /needs a command \(lab\) or adopt/);
  assert.match(problemsOf(`${base}  adopt: {cgroup: /x}\n`)[0]!, /spec.ip: an adopted Workload needs its ip/);
});

test('the node\'s connection capacity is a bounded integer, and sizes every per-connection map', async () => {
  const mesh = (v: string) => `apiVersion: ebmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  datapath: {connections: ${v}}\n`;
  const [p] = problemsOf(mesh('100'));
  assert.match(p ?? '', /^in\.yaml:5: MeshConfig mesh: spec\.datapath\.connections: .*1024/);
  assert.match(problemsOf(mesh('1.5'))[0] ?? '', /spec\.datapath\.connections/);
  const [m] = parseResources(mesh('200000'));
  assert.equal(m?.kind, 'MeshConfig');
  if (m?.kind !== 'MeshConfig') return;
  const { connectionMapSizes, CONNECTION_MAPS } = await import('../agent/map-sizes.js');
  assert.deepEqual(connectionMapSizes(m), Object.fromEntries(CONNECTION_MAPS.map((n) => [n, 200000])));
  // Unset: the compiled defaults stand.
  const [d] = parseResources(`apiVersion: ebmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {}\n`);
  assert.deepEqual(d?.kind === 'MeshConfig' ? connectionMapSizes(d) : undefined, {});
});
