import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, type WorkloadResource } from '../resources/schemas.js';
import { NetworkPolicy, type NetworkPolicyInput } from '../resources/networkpolicy.js';
import { compilePolicies } from './compile.js';
import { IdentityIndex, allocateIdentities } from './identity.js';
import { CIDR_GROUP_BIT, portBlockEnd, portRangeToPrefixes, type CompiledTables } from './tables.js';
import { PolicyTables } from './verdict.js';

const wl = (name: string, labels: Record<string, string>, ip?: string, ports: Array<{ name: string; containerPort: number; protocol?: 'TCP' | 'UDP' }> = []): WorkloadResource =>
  Workload.parse({ apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload', metadata: { name, namespace: 'x', labels }, spec: { command: ['true'], ports, ...(ip ? { ip } : {}) } });
const np = (name: string, spec: NetworkPolicyInput['spec']) =>
  NetworkPolicy.parse({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'x' }, spec });

function compile(workloads: WorkloadResource[], policies: ReturnType<typeof np>[]): { t: CompiledTables; id: (labels: Record<string, string>) => number } {
  const identities = allocateIdentities(undefined, workloads, { now: 0 });
  const ix = new IdentityIndex(identities);
  return { t: compilePolicies({ policies, namespaces: [], workloads, identities }), id: (l) => ix.of('x', l)! };
}

test('portRangeToPrefixes covers exactly the range with the fewest aligned blocks', () => {
  assert.deepEqual(portRangeToPrefixes(80, 80), [{ port: 80, prefixLen: 16 }]);
  assert.deepEqual(portRangeToPrefixes(0, 65535), [{ port: 0, prefixLen: 0 }]);
  assert.deepEqual(portRangeToPrefixes(80, 81), [{ port: 80, prefixLen: 15 }]);
  assert.deepEqual(portRangeToPrefixes(81, 90), [{ port: 81, prefixLen: 16 }, { port: 82, prefixLen: 15 }, { port: 84, prefixLen: 14 }, { port: 88, prefixLen: 15 }, { port: 90, prefixLen: 16 }]);
  assert.equal(portRangeToPrefixes(1, 65535).length, 16);
  assert.ok(portRangeToPrefixes(1, 65534).length <= 30);
  // Exhaustive on a sample of ranges: every port in, no port out, blocks aligned.
  for (const [lo, hi] of [[1, 1024], [1000, 2000], [32767, 32769], [5, 65530], [443, 8443]] as const) {
    const blocks = portRangeToPrefixes(lo, hi);
    let covered = 0;
    for (const b of blocks) {
      assert.equal(b.port % (1 << (16 - b.prefixLen)), 0, 'aligned');
      assert.ok(b.port >= lo && portBlockEnd(b.port, b.prefixLen) <= hi, 'inside');
      covered += portBlockEnd(b.port, b.prefixLen) - b.port + 1;
    }
    assert.equal(covered, hi - lo + 1, `${lo}-${hi} covered exactly once`);
  }
});

test('isolation only for selected subjects and listed directions; refs name the policy', () => {
  const { t, id } = compile([wl('a', { app: 'a' }), wl('b', { app: 'b' })], [np('iso', { podSelector: { matchLabels: { app: 'a' } }, policyTypes: ['Egress'] })]);
  assert.deepEqual(t.isolation, [{ subject: id({ app: 'a' }), direction: 'egress', policyRef: 1 }]);
  assert.deepEqual(t.refs, ['', 'x/iso']);
  assert.deepEqual(t.allow, []);
});

test('allow entries: exact peer, any peer, port prefixes, carrying policy and rule', () => {
  const ws = [wl('a', { app: 'a' }), wl('b', { app: 'b' })];
  const { t, id } = compile(ws, [np('p', {
    podSelector: { matchLabels: { app: 'a' } },
    ingress: [
      { from: [{ podSelector: { matchLabels: { app: 'b' } } }], ports: [{ port: 80, endPort: 81 }] },
      { ports: [{ protocol: 'UDP', port: 53 }] },
    ],
  })]);
  assert.deepEqual(t.allow, [
    { subject: id({ app: 'a' }), peer: 0, direction: 'ingress', proto: 'UDP', port: 53, portPrefixLen: 16, policyRef: 1, rule: 1 },
    { subject: id({ app: 'a' }), peer: id({ app: 'b' }), direction: 'ingress', proto: 'TCP', port: 80, portPrefixLen: 15, policyRef: 1, rule: 0 },
  ]);
});

test('dedupe: overlapping policies give one entry; a broader entry absorbs narrower ones', () => {
  const ws = [wl('a', { app: 'a' }), wl('b', { app: 'b' })];
  const from = [{ podSelector: { matchLabels: { app: 'b' } } }];
  const { t } = compile(ws, [
    np('p1', { podSelector: { matchLabels: { app: 'a' } }, ingress: [{ from, ports: [{ port: 80 }] }] }),
    np('p2', { podSelector: { matchLabels: { app: 'a' } }, ingress: [{ from, ports: [{ port: 80 }] }] }),
    np('p3', { podSelector: { matchLabels: { app: 'a' } }, ingress: [{ from, ports: [{ protocol: 'UDP' }] }, { ports: [{ port: 80 }, { port: 81 }] }] }),
  ]);
  // TCP 80 from b is covered by "TCP 80 from anyone" (p3 rule 1); the first writer of that is p3.
  assert.deepEqual(t.allow.map((e) => `${e.peer === 0 ? 'any' : 'b'} ${e.proto}/${e.port}/${e.portPrefixLen} ${t.refs[e.policyRef]}#${e.rule}`).sort(), [
    'any TCP/80/16 x/p3#1', 'any TCP/81/16 x/p3#1', 'b UDP/0/0 x/p3#0',
  ]);
});

test('ipBlock except: a hole in the block, and nested blocks keep the outer ports', () => {
  const ws = [wl('a', { app: 'a' }, '10.0.0.1')];
  const { t, id } = compile(ws, [np('p', {
    podSelector: {},
    ingress: [
      { from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16', '10.2.0.0/16'] } }], ports: [{ port: 80 }] },
      { from: [{ ipBlock: { cidr: '10.2.0.0/16' } }], ports: [{ port: 81 }] },
    ],
  })]);
  const a = id({ app: 'a' });
  const regions = t.cidr.map((c) => `${c.addr}/${c.prefixLen} ${c.group === 0 ? `hole ${t.refs[c.policyRef]}#${c.rule}` : 'group'}`);
  assert.deepEqual(regions, ['10.0.0.0/8 group', '10.1.0.0/16 hole x/p#0', '10.2.0.0/16 group']);
  const g8 = t.cidr[0]!.group;
  const g16 = t.cidr[2]!.group;
  assert.ok(g8 & CIDR_GROUP_BIT && g16 & CIDR_GROUP_BIT && g8 !== g16);
  assert.deepEqual(t.allow.filter((e) => e.peer === g8).map((e) => e.port), [80]);
  assert.deepEqual(t.allow.filter((e) => e.peer === g16).map((e) => e.port), [81]);
  const k = new PolicyTables(t);
  const v = (ip: string, port: number) => k.verdict({ from: { ip }, to: { workload: 'x/a' }, proto: 'TCP', port }).allowed;
  assert.equal(v('10.3.0.1', 80), true);
  assert.equal(v('10.3.0.1', 81), false);
  assert.equal(v('10.1.0.1', 80), false);
  assert.equal(v('10.2.0.1', 80), false);
  assert.equal(v('10.2.0.1', 81), true);
  assert.equal(v('11.0.0.1', 80), false);
  assert.equal(k.verdict({ from: { ip: '10.1.0.1' }, to: { workload: 'x/a' }, proto: 'TCP', port: 80 }).ingress.cidr?.group, 0);
  void a;
});

test('regions that answer like their parent are left out; groups are shared', () => {
  const ws = [wl('a', { app: 'a' }, '10.0.0.1'), wl('b', { app: 'b' }, '10.0.0.2')];
  const { t } = compile(ws, [np('p', {
    podSelector: {},
    ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' } }, { ipBlock: { cidr: '10.0.0.0/16' } }] }],
  })]);
  // The /16 is allowed by the same rule as the /8: the /8 alone answers. Both subjects share one group.
  assert.deepEqual(t.cidr.map((c) => `${c.subject} ${c.addr}/${c.prefixLen}`).length, 2);
  assert.equal(new Set(t.cidr.map((c) => c.group)).size, 1);
});

test('named ports: ingress resolves on the subject, egress on each peer', () => {
  const ws = [
    wl('a', { app: 'a' }, '10.0.0.1', [{ name: 'http', containerPort: 8080 }]),
    wl('b', { app: 'b' }, '10.0.0.2', [{ name: 'http', containerPort: 9090 }]),
    wl('c', { app: 'c' }, '10.0.0.3'),
  ];
  const { t, id } = compile(ws, [
    np('in', { podSelector: { matchLabels: { app: 'a' } }, ingress: [{ ports: [{ port: 'http' }] }] }),
    np('out', { podSelector: { matchLabels: { app: 'c' } }, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'http' }] }] }),
  ]);
  const show = (subject: number) => t.allow.filter((e) => e.subject === subject).map((e) => `${e.direction} ${e.peer} ${e.port}`);
  assert.deepEqual(show(id({ app: 'a' })), ['ingress 0 8080']);
  assert.deepEqual(show(id({ app: 'c' })), [`egress ${id({ app: 'a' })} 8080`, `egress ${id({ app: 'b' })} 9090`]);
  const k = new PolicyTables(t);
  assert.equal(k.verdict({ from: { workload: 'x/c' }, to: { workload: 'x/b' }, proto: 'TCP', port: 9090 }).allowed, true);
  assert.equal(k.verdict({ from: { workload: 'x/c' }, to: { workload: 'x/b' }, proto: 'TCP', port: 8080 }).allowed, false);
  assert.equal(k.verdict({ from: { workload: 'x/c' }, to: { ip: '192.0.2.1' }, proto: 'TCP', port: 8080 }).allowed, false);
});

test('egress named port to an ipBlock becomes /32 regions of the workloads in the block', () => {
  const ws = [
    wl('a', { app: 'a' }, '10.0.0.1', [{ name: 'http', containerPort: 8080 }]),
    wl('b', { app: 'b' }, '10.0.1.2', [{ name: 'http', containerPort: 9090 }]),
    wl('c', { app: 'c' }, '10.0.0.3'),
  ];
  const { t } = compile(ws, [np('out', { podSelector: { matchLabels: { app: 'c' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/24' } }], ports: [{ port: 'http' }] }] })]);
  assert.deepEqual(t.cidr.map((c) => `${c.addr}/${c.prefixLen}`), ['10.0.0.1/32']);
  const k = new PolicyTables(t);
  assert.equal(k.verdict({ from: { workload: 'x/c' }, to: { ip: '10.0.0.1' }, proto: 'TCP', port: 8080 }).allowed, true);
  assert.equal(k.verdict({ from: { workload: 'x/c' }, to: { ip: '10.0.1.2' }, proto: 'TCP', port: 9090 }).allowed, false);
});

test('workloads of one identity that disagree on a named port: a warning, not silence', () => {
  const ws = [wl('a1', { app: 'a' }, undefined, [{ name: 'http', containerPort: 80 }]), wl('a2', { app: 'a' }, undefined, [{ name: 'http', containerPort: 8080 }])];
  const { t } = compile(ws, [np('in', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] })]);
  assert.equal(t.warnings.length, 1);
  assert.match(t.warnings[0]!, /resolve a named port differently/);
  assert.deepEqual(t.allow.map((e) => e.port), [80, 8080]);
});

test('compiling is deterministic', () => {
  const ws = [wl('a', { app: 'a' }, '10.0.0.1'), wl('b', { app: 'b' }, '10.0.0.2')];
  const ps = [np('p2', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.0.2/32'] } }] }] }), np('p1', { podSelector: { matchLabels: { app: 'a' } }, egress: [{ to: [{ podSelector: {} }] }] })];
  assert.deepEqual(compile(ws, ps).t, compile([...ws].reverse(), [...ps].reverse()).t);
});
