import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NetworkPolicy } from './networkpolicy.js';

const base = (spec: Record<string, unknown>) => ({
  apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'p', namespace: 'x' }, spec,
});

/** Issues as "path: message", so assertions name the field. */
function problems(spec: Record<string, unknown>): string[] {
  const r = NetworkPolicy.safeParse(base(spec));
  return r.success ? [] : r.error.issues.map((i) => `${i.path.slice(1).join('.')}: ${i.message}`);
}

test('policyTypes defaults exactly as Kubernetes', () => {
  const types = (spec: Record<string, unknown>) => NetworkPolicy.parse(base(spec)).spec.policyTypes;
  assert.deepEqual(types({ podSelector: {} }), ['Ingress']);
  assert.deepEqual(types({ podSelector: {}, ingress: [{}] }), ['Ingress']);
  assert.deepEqual(types({ podSelector: {}, egress: [] }), ['Ingress']);
  assert.deepEqual(types({ podSelector: {}, egress: [{}] }), ['Ingress', 'Egress']);
  assert.deepEqual(types({ podSelector: {}, policyTypes: ['Egress'] }), ['Egress']);
  assert.deepEqual(types({ podSelector: {}, policyTypes: [] , egress: [{}] }), ['Ingress', 'Egress']);
});

test('port protocol defaults to TCP and namespace to default', () => {
  const p = NetworkPolicy.parse({ ...base({ podSelector: {}, ingress: [{ ports: [{ port: 80 }, {}] }] }), metadata: { name: 'p' } });
  assert.equal(p.metadata.namespace, 'default');
  assert.deepEqual(p.spec.ingress?.[0]?.ports, [{ protocol: 'TCP', port: 80 }, { protocol: 'TCP' }]);
});

test('a full policy parses', () => {
  const p = NetworkPolicy.parse(base({
    podSelector: { matchLabels: { app: 'db' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['a'] }] },
    policyTypes: ['Ingress', 'Egress'],
    ingress: [{ from: [{ podSelector: {}, namespaceSelector: { matchLabels: { team: 'x' } } }, { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }], ports: [{ port: 'http' }, { port: 5000, endPort: 5010, protocol: 'UDP' }] }],
    egress: [{ to: [{ namespaceSelector: {} }] }],
  }));
  assert.equal(p.spec.ingress?.[0]?.from?.length, 2);
});

test('podSelector is required', () => {
  assert.deepEqual(problems({}), ['podSelector: Required']);
});

test('unknown fields are errors at every level', () => {
  assert.match(problems({ podSelector: {}, bogus: 1 }).join(), /Unrecognized key.*bogus/);
  assert.match(problems({ podSelector: {}, ingress: [{ form: [] }] }).join(), /ingress\.0: Unrecognized key.*form/);
  assert.match(problems({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', exclude: [] } }] }] }).join(), /ipBlock: Unrecognized key/);
  assert.match(problems({ podSelector: {}, ingress: [{ ports: [{ port: 80, name: 'x' }] }] }).join(), /ports\.0: Unrecognized key/);
  assert.match(problems({ podSelector: { matchLabel: {} } }).join(), /podSelector: Unrecognized key/);
});

test('SCTP is refused with a clear message; other protocols too', () => {
  assert.deepEqual(problems({ podSelector: {}, ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }] }] }), ['ingress.0.ports.0.protocol: SCTP is not supported by ebmesh (TCP and UDP are)']);
  assert.deepEqual(problems({ podSelector: {}, egress: [{ ports: [{ protocol: 'ICMP' }] }] }), ['egress.0.ports.0.protocol: must be TCP or UDP']);
});

test('ports: by number or name, endPort only after a numeric port not below it', () => {
  assert.deepEqual(problems({ podSelector: {}, ingress: [{ ports: [{ port: 0 }] }] }), ['ingress.0.ports.0.port: must be a port from 1 to 65535']);
  assert.match(problems({ podSelector: {}, ingress: [{ ports: [{ port: 'HTTP_' }] }] }).join(), /ingress\.0\.ports\.0\.port: must be a port name/);
  assert.deepEqual(problems({ podSelector: {}, ingress: [{ ports: [{ port: true }] }] }), ['ingress.0.ports.0.port: must be a port number or a port name']);
  assert.deepEqual(problems({ podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }), ['ingress.0.ports.0.endPort: endPort 80 must be >= port 90']);
  assert.deepEqual(problems({ podSelector: {}, ingress: [{ ports: [{ port: 'http', endPort: 80 }] }] }), ['ingress.0.ports.0.endPort: endPort cannot be used with a named port ("http")']);
  assert.deepEqual(problems({ podSelector: {}, ingress: [{ ports: [{ endPort: 80 }] }] }), ['ingress.0.ports.0.endPort: endPort needs a numeric port']);
  assert.deepEqual(problems({ podSelector: {}, ingress: [{ ports: [{ port: 80, endPort: 80 }] }] }), []);
});

test('ipBlock: valid cidr, excepts strictly inside, alone in its peer', () => {
  const peer = (p: unknown) => ({ podSelector: {}, ingress: [{ from: [p] }] });
  assert.deepEqual(problems(peer({ ipBlock: { cidr: '10.0.0.0/33' } })), ['ingress.0.from.0.ipBlock.cidr: must be an IPv4 CIDR (a.b.c.d/n) or an IPv6 CIDR (x:y::z/n)']);
  assert.deepEqual(problems(peer({ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] } })), ['ingress.0.from.0.ipBlock.except.0: 11.0.0.0/16 must be a strict subset of cidr 10.0.0.0/8']);
  assert.deepEqual(problems(peer({ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.0.0/8'] } })), ['ingress.0.from.0.ipBlock.except.0: 10.0.0.0/8 must be a strict subset of cidr 10.0.0.0/8']);
  assert.deepEqual(problems(peer({ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.0.0/8'] } })), ['ingress.0.from.0.ipBlock.except.0: 10.0.0.0/8 must be a strict subset of cidr 10.0.0.0/16']);
  assert.deepEqual(problems(peer({ ipBlock: { cidr: '10.0.0.0/8', except: ['10.2.0.0/16', 'nope'] } })), ['ingress.0.from.0.ipBlock.except.1: must be an IPv4 CIDR (a.b.c.d/n) or an IPv6 CIDR (x:y::z/n)']);
  assert.deepEqual(problems(peer({ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } })), []);
  // IPv6 blocks, and excepts of the other family (never a subset).
  assert.deepEqual(problems(peer({ ipBlock: { cidr: 'fd00:1::/48', except: ['fd00:1:0:2::/64'] } })), []);
  assert.deepEqual(problems(peer({ ipBlock: { cidr: '::/0', except: ['fd00::/8'] } })), []);
  assert.deepEqual(problems(peer({ ipBlock: { cidr: 'fd00::/129' } })), ['ingress.0.from.0.ipBlock.cidr: must be an IPv4 CIDR (a.b.c.d/n) or an IPv6 CIDR (x:y::z/n)']);
  assert.deepEqual(problems(peer({ ipBlock: { cidr: 'fd00:1::/48', except: ['10.0.0.0/8'] } })), ['ingress.0.from.0.ipBlock.except.0: 10.0.0.0/8 must be a strict subset of cidr fd00:1::/48']);
  assert.deepEqual(problems(peer({ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} })), ['ingress.0.from.0.ipBlock: ipBlock cannot be combined with podSelector or namespaceSelector in one peer (use two peers)']);
  assert.deepEqual(problems(peer({})), ['ingress.0.from.0: a peer needs podSelector, namespaceSelector or ipBlock']);
});

test('policyTypes: only Ingress and Egress, each once', () => {
  assert.deepEqual(problems({ podSelector: {}, policyTypes: ['ingress'] }), ['policyTypes.0: must be Ingress or Egress']);
  assert.deepEqual(problems({ podSelector: {}, policyTypes: ['Egress', 'Egress'] }), ['policyTypes: lists a type twice']);
});

test('selector requirements are checked', () => {
  assert.deepEqual(problems({ podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }), ['podSelector.matchExpressions.0.values: operator In needs at least one value']);
  assert.deepEqual(problems({ podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } }), ['podSelector.matchExpressions.0.values: operator Exists takes no values']);
});
