import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Namespace, Workload } from '../resources/schemas.js';
import { NetworkPolicy } from '../resources/networkpolicy.js';
import { caseWorld, podIp } from '../../test/fixtures/policy-cases.js';
import { allocateIdentities } from './identity.js';
import { compilePolicies } from './compile.js';
import { explain } from './explain.js';
import { EndpointPolicy, ingressTablesFor } from './tunnel-ingress.js';

const np = (name: string, namespace: string, spec: unknown) => NetworkPolicy.parse({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec });

test('the endpoint judges the destination\'s ingress for the caller\'s address as explain does, naming the policy', () => {
  const w = caseWorld();
  const state = {
    namespaces: w.namespaces.map((n) => Namespace.parse(n)),
    workloads: w.workloads.map((x) => Workload.parse(x)),
    policies: [np('b-from-x', 'y', { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'x' } } }], ports: [{ port: 80 }] }] })],
  };
  const tables = compilePolicies({ ...state, identities: allocateIdentities(undefined, state.workloads, { now: 0 }) });
  const dst = podIp('y/b');
  const cut = ingressTablesFor(tables, [dst]);
  // Only the destination's ingress rows travel to the proxy.
  assert.ok(cut.allow.length > 0 && cut.allow.every((r) => r.direction === 'ingress'));
  assert.deepEqual(cut.workloads.map((x) => x.ip), [dst]);
  const p = new EndpointPolicy(cut);
  for (const [from, port] of [['x/a', 80], ['z/a', 80], ['x/a', 81]] as const) {
    const v = p.judge({ sourceIp: podIp(from), dst: { ip: dst, port } });
    const e = explain({ ...state, tables }, from, 'y/b', port, 'TCP');
    assert.equal(v.allow, e.ingress.verdict === 'allow', `${from}:${port}`);
    if (!v.allow) {
      assert.equal(v.policy?.name, 'y/b-from-x');
      assert.match(v.reason, /NetworkPolicy y\/b-from-x denies ingress to y\/b/);
    }
  }
  assert.equal(p.judge({ sourceIp: podIp('x/a'), dst: { ip: dst, port: 80 } }).allow, true);
  assert.equal(p.judge({ sourceIp: podIp('z/a'), dst: { ip: dst, port: 80 } }).allow, false);
  // No source address: judged as the world, which no rule here admits.
  assert.equal(p.judge({ sourceIp: undefined, dst: { ip: dst, port: 80 } }).allow, false);
  // A destination no policy isolates is not refused.
  assert.equal(new EndpointPolicy(ingressTablesFor(tables, [podIp('x/a')])).judge({ sourceIp: podIp('z/a'), dst: { ip: podIp('x/a'), port: 80 } }).allow, true);
});
