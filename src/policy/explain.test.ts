import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Namespace, Workload } from '../resources/schemas.js';
import { NetworkPolicy } from '../resources/networkpolicy.js';
import { ResourceError } from '../resources/parse.js';
import { caseWorld, podIp } from '../../test/fixtures/policy-cases.js';
import { explain, type ExplainState } from './explain.js';
import { checkNamedPorts, parseNetworkPolicy } from './validate.js';

function state(policies: unknown[]): ExplainState {
  const w = caseWorld();
  return {
    namespaces: w.namespaces.map((n) => Namespace.parse(n)),
    workloads: w.workloads.map((x) => Workload.parse(x)),
    policies: policies.map((p) => NetworkPolicy.parse(p)),
  };
}
const np = (name: string, namespace: string, spec: unknown) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec });

test('explain: not isolated on both sides', () => {
  const e = explain(state([]), 'x/a', 'y/b', 80, 'TCP');
  assert.equal(e.verdict, 'allow');
  assert.equal(e.egress.decidedBy, 'not isolated');
  assert.equal(e.ingress.decidedBy, 'not isolated');
  assert.deepEqual(e.warnings, []);
});

test('explain: names the policy and rule that allowed, and the isolating policies on deny', () => {
  const s = state([
    np('deny', 'y', { podSelector: {} }),
    np('b-from-x', 'y', { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{ ports: [{ port: 81 }] }, { from: [{ namespaceSelector: { matchLabels: { ns: 'x' } } }], ports: [{ port: 80 }] }] }),
  ]);
  const ok = explain(s, 'x/a', 'y/b', 80, 'TCP');
  assert.equal(ok.verdict, 'allow');
  assert.deepEqual({ by: ok.ingress.decidedBy, policy: ok.ingress.policy, rule: ok.ingress.rule, via: ok.ingress.via }, { by: 'rule', policy: 'y/b-from-x', rule: 1, via: 'identity' });
  assert.equal(ok.egress.decidedBy, 'not isolated');
  assert.match(ok.ingress.text, /allowed by y\/b-from-x ingress rule 1/);

  const no = explain(s, 'z/a', 'y/b', 80, 'TCP');
  assert.equal(no.verdict, 'deny');
  assert.equal(no.ingress.decidedBy, 'isolated, no rule allows');
  assert.deepEqual(no.ingress.isolatedBy, ['y/b-from-x', 'y/deny']);
  assert.match(no.ingress.text, /denied, isolated by y\/b-from-x, y\/deny/);
});

test('explain: egress side, external destination, and an except hole', () => {
  const s = state([np('out', 'x', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['192.0.2.0/24'] } }] }] })]);
  const out = explain(s, 'x/a', '198.51.100.1', 443, 'TCP');
  assert.equal(out.verdict, 'allow');
  assert.equal(out.egress.via, 'cidr');
  assert.equal(out.ingress.decidedBy, 'not in mesh');
  const hole = explain(s, 'x/a', '192.0.2.9', 443, 'TCP');
  assert.equal(hole.verdict, 'deny');
  assert.match(hole.egress.text, /in an except of x\/out rule 0/);
  const self = explain(s, 'x/a', podIp('x/a'), 1, 'UDP');
  assert.equal(self.egress.decidedBy, 'loopback');
});

test('explain: a Service VIP is judged on the backend and target port it resolves to', () => {
  const s = state([np('b-8080', 'y', { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{ ports: [{ port: 81 }] }] })]);
  const resolveService = (ip: string, port: number) => (ip === '10.96.0.10' && port === 80 ? { to: { workload: 'y/b' }, port: 81, service: 'y/web' } : undefined);
  const e = explain(s, 'x/a', '10.96.0.10', 80, 'TCP', { resolveService });
  assert.equal(e.verdict, 'allow');
  assert.deepEqual(e.service, { ip: '10.96.0.10', port: 80, name: 'y/web' });
  assert.deepEqual(e.flow.to, { workload: 'y/b' });
  assert.equal(e.flow.port, 81);
  // Without the resolver the VIP is just an outside address: allowed, as nothing isolates x/a's egress.
  assert.equal(explain(s, 'x/a', '10.96.0.10', 80, 'TCP').ingress.decidedBy, 'not in mesh');
  // And a direct hit on the wrong port is denied.
  assert.equal(explain(s, 'x/a', 'y/b', 80, 'TCP').verdict, 'deny');
});

test('parseNetworkPolicy: ResourceError naming the resource and field', () => {
  assert.throws(() => parseNetworkPolicy(np('bad', 'x', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/8'] } }], ports: [{ protocol: 'SCTP' }] }] }), 'p.yaml'), (e: unknown) => {
    assert.ok(e instanceof ResourceError);
    assert.equal(e.code, 'EBMESH_RESOURCE_INVALID');
    assert.deepEqual(e.problems.map((p) => `${p.resource} ${p.field}: ${p.message}`), [
      'NetworkPolicy x/bad spec.ingress[0].from[0].ipBlock.except[0]: 11.0.0.0/8 must be a strict subset of cidr 10.0.0.0/8',
      'NetworkPolicy x/bad spec.ingress[0].ports[0].protocol: SCTP is not supported by ebmesh (TCP and UDP are)',
    ]);
    assert.match(e.message, /^p\.yaml: NetworkPolicy x\/bad: spec\.ingress\[0\]\.from\[0\]\.ipBlock\.except\[0\]/);
    return true;
  });
  assert.throws(() => parseNetworkPolicy(np('bad', 'x', { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '300.0.0.0/8' } }] }] })), /spec\.egress\[0\]\.to\[0\]\.ipBlock\.cidr: must be an IPv4 CIDR/);
  assert.equal(parseNetworkPolicy(np('ok', 'x', { podSelector: {} })).spec.policyTypes[0], 'Ingress');
});

test('checkNamedPorts: a named port no workload declares, with the field', () => {
  const s = state([
    np('in', 'x', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 'serve-80-tcp' }, { port: 'serve-80-tcp', protocol: 'UDP' }, { port: 'nope' }] }] }),
    np('out', 'x', { podSelector: {}, egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'none' } } }], ports: [{ port: 'serve-81-udp', protocol: 'UDP' }] }, { ports: [{ port: 'serve-81-udp', protocol: 'UDP' }] }] }),
  ]);
  assert.deepEqual(checkNamedPorts(s.policies, s.workloads, s.namespaces).map((p) => `${p.resource} ${p.field}`), [
    'NetworkPolicy x/in spec.ingress[0].ports[1].port',
    'NetworkPolicy x/in spec.ingress[0].ports[2].port',
    'NetworkPolicy x/out spec.egress[0].ports[0].port',
  ]);
});

test('explain over IPv6: an IPv6 ipBlock decides for IPv6 addresses, the family picks a workload\'s address, families never mix in a flow', () => {
  const s = state([np('out6', 'x', {
    podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'],
    egress: [{ to: [{ ipBlock: { cidr: '2001:db8::/32', except: ['2001:db8:bad::/48'] } }] }, { to: [{ podSelector: { matchLabels: { pod: 'b' } }, namespaceSelector: {} }], ports: [{ port: 80 }] }],
  })]);
  const out = explain(s, 'x/a', '2001:db8:1::5', 443, 'TCP');
  assert.equal(out.verdict, 'allow');
  assert.equal(out.egress.via, 'cidr');
  const hole = explain(s, 'x/a', '2001:DB8:BAD::5', 443, 'TCP');
  assert.equal(hole.verdict, 'deny', 'non-canonical text is the same address');
  assert.match(hole.egress.text, /in an except of x\/out6 rule 0/);
  assert.equal(explain(s, 'x/a', '198.51.100.1', 443, 'TCP').verdict, 'deny', 'an IPv6 block does not cover IPv4');
  // Between workloads the identities decide, over either family.
  assert.equal(explain(s, 'x/a', 'y/b', 80, 'TCP', { family: 6 }).verdict, 'allow');
  assert.equal(explain(s, 'x/a', 'y/b', 80, 'TCP', { family: 6 }).flow.family, 6);
  assert.throws(() => explain(s, '10.0.0.1', '2001:db8::1', 80, 'TCP'), /a flow is one family/);
});
