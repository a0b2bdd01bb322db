/**
 * Per-packet policy over IPv6 (bpf/policy.bpf.c) in the real kernel,
 * packet by packet through BPF_PROG_TEST_RUN, for dual-stack workloads: the
 * same identities judge both families, IPv6 peers are found in the IPv6
 * ipcache and ipBlocks in the IPv6 CIDR table, extension headers are walked
 * to the transport header, ICMPv6 (neighbour discovery) always passes, and
 * drop events carry the IPv6 addresses. What test runs cannot drive (real
 * TCP stream sockets, UDP flows across runs) is what policy_skb.test.ts
 * says; the integration tier covers it with real sockets.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counter, EventFlag, EventType, Reason, RULE_NONE, Verdict } from '../../src/abi/structs.js';
import { PolicyMaps } from '../../src/policy/policy-maps.js';
import { PolicyAgent } from '../../src/policy/policy-agent.js';
import { decidePolicy, type PlannedEndpoint } from '../../src/policy/node-policy.js';
import type { IdentityIndex } from '../../src/policy/index.js';
import { NetworkPolicy } from '../../src/resources/networkpolicy.js';
import { Namespace, Workload } from '../../src/resources/schemas.js';
import { IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, NEXTHDR, TCP, type PacketSpec } from '../helpers/packet.js';
import { SkbWorld, type FlowEventRecord } from '../helpers/skb-world.js';

const NODE6 = 'fd00:77::1';
const API = { v4: '10.78.0.10', v6: 'fd00:77::10' };
const WEB = { v4: '10.78.0.11', v6: 'fd00:77::11' };
const BATCH = { v4: '10.78.0.12', v6: 'fd00:77::12' };
const NS = 'shop6';

const workload = (name: string, a: { v4: string; v6: string }) => Workload.parse({
  apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload',
  metadata: { name, namespace: NS, labels: { app: name } }, spec: { ip: a.v4, ipv6: a.v6, ports: [{ containerPort: 8080 }], command: ['true'] },
});
const policy = (name: string, spec: unknown) => NetworkPolicy.parse({
  apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: NS }, spec,
});

const workloads = [workload('api', API), workload('web', WEB), workload('batch', BATCH)];
const policies = [
  policy('api-in', {
    podSelector: { matchLabels: { app: 'api' } },
    policyTypes: ['Ingress'],
    ingress: [
      { from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 8080 }] },
      { from: [{ ipBlock: { cidr: '2001:db8:1::/48', except: ['2001:db8:1:ff::/64'] } }], ports: [{ port: 8080 }] },
    ],
  }),
  policy('api-out', {
    podSelector: { matchLabels: { app: 'api' } },
    policyTypes: ['Egress'],
    egress: [{ to: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ protocol: 'UDP', port: 53 }] }],
  }),
];

let world: SkbWorld;
let maps: PolicyMaps;
let agent: PolicyAgent;
let stateDir: string;
let id: { api: number; web: number; batch: number };
let ref: { apiIn: number; apiOut: number };

before(() => {
  world = new SkbWorld('polskb6', ['policy.bpf.o']);
  stateDir = mkdtempSync(join(tmpdir(), 'ebtest-polskb6-'));
  maps = new PolicyMaps(world.objectOf('ebm_policy_ingress'));
  agent = new PolicyAgent(maps, join(stateDir, 'identities.json'));
  world.enterCgroup('api');
  const endpoints = (index: IdentityIndex): PlannedEndpoint[] => {
    const api = workloads[0]!;
    return [{ workload: `${NS}/api`, cgroup: 'api', identity: index.of(NS, api.metadata.labels)!, ip: API.v4, ipv6: API.v6 }];
  };
  const namespaces = [Namespace.parse({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } })];
  const plan = decidePolicy({ world: { policies, namespaces, workloads }, identities: agent.identities, hostIps: [NODE6], endpoints });
  assert.ok(agent.apply(plan, (cg) => world.cgroupIdOf(cg)) > 0);
  const of = (name: string) => agent.identityOf(workloads.find((w) => w.metadata.name === name)!)!;
  id = { api: of('api'), web: of('web'), batch: of('batch') };
  const refs = agent.tables!.refs;
  ref = { apiIn: refs.indexOf(`${NS}/api-in`), apiOut: refs.indexOf(`${NS}/api-out`) };
  const held = maps.read();
  assert.equal(held.ipcache6.size, 4, 'three workloads and the node, by their IPv6 addresses');
  assert.ok(held.cidr6.size >= 2 && held.cidr.size === 0, 'the IPv6 ipBlock is in the IPv6 CIDR table only');
});

after(() => {
  world?.cleanup();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

interface Judged { verdict: number; events: FlowEventRecord[]; drops: Record<string, number>; denied: bigint }

function judge(program: 'ebm_policy_ingress' | 'ebm_policy_egress', packet: PacketSpec): Judged {
  world.events();
  const drops0 = maps.dropCounts();
  const denied0 = world.counter(Counter.POL_DENIED);
  const verdict = world.run(program, packet);
  const drops = Object.fromEntries(Object.entries(maps.dropCounts())
    .map(([k, v]) => [k, v - (drops0[k] ?? 0)] as const).filter(([, d]) => d !== 0));
  return { verdict, events: world.events(), drops, denied: world.counter(Counter.POL_DENIED) - denied0 };
}

const synTo = (dport: number, src: string, extra: Partial<PacketSpec> = {}): PacketSpec => ({
  src, dst: API.v6, proto: IPPROTO_TCP, sport: 41000, dport, tcpFlags: TCP.SYN, ...extra,
});

function assertPassed(j: Judged): void {
  assert.equal(j.verdict, 1, 'the packet was dropped');
  assert.deepEqual(j.events, []);
  assert.equal(j.denied, 0n);
}

function assertDropped(j: Judged, want: { reason: keyof typeof Reason; inbound: boolean; packet: PacketSpec; src: number; dst: number; policyRef: number; rule: number }): void {
  assert.equal(j.verdict, 0, 'the packet passed');
  assert.deepEqual(j.drops, { [want.reason.toLowerCase()]: 1 });
  assert.equal(j.events.length, 1, 'one drop event');
  const e = j.events[0]!;
  assert.deepEqual({
    type: e.type, verdict: e.verdict, reason: e.reason, flags: e.flags, proto: e.proto,
    saddr: e.saddr, daddr: e.daddr, sport: e.sport, dport: e.dport,
    src_identity: e.src_identity, dst_identity: e.dst_identity, policy_ref: e.policy_ref, policy_rule: e.policy_rule,
  }, {
    type: EventType.DROP, verdict: Verdict.DROPPED, reason: Reason[want.reason],
    flags: EventFlag.PACKET | (want.inbound ? EventFlag.INBOUND : 0), proto: want.packet.proto,
    saddr: want.packet.src, daddr: want.packet.dst, sport: want.packet.sport ?? 0, dport: want.packet.dport ?? 0,
    src_identity: want.src, dst_identity: want.dst, policy_ref: want.policyRef, policy_rule: want.rule,
  });
}

test('ingress over IPv6: a SYN from an allowed identity passes; from another it is dropped and reported with IPv6 addresses', () => {
  assertPassed(judge('ebm_policy_ingress', synTo(8080, WEB.v6)));
  const packet = synTo(8080, BATCH.v6);
  assertDropped(judge('ebm_policy_ingress', packet), {
    reason: 'POLICY_INGRESS', inbound: true, packet, src: id.batch, dst: id.api, policyRef: ref.apiIn, rule: RULE_NONE,
  });
});

test('the same identities judge IPv4: one workload, one verdict for both families', () => {
  assertPassed(judge('ebm_policy_ingress', synTo(8080, WEB.v4, { dst: API.v4 })));
  assert.equal(judge('ebm_policy_ingress', synTo(8080, BATCH.v4, { dst: API.v4 })).verdict, 0);
});

test('an IPv6 ipBlock allows its CIDR, not its except (reported with the except\'s rule), nor what lies outside', () => {
  assertPassed(judge('ebm_policy_ingress', synTo(8080, '2001:db8:1:2::7')));
  const hole = synTo(8080, '2001:db8:1:ff::7');
  assertDropped(judge('ebm_policy_ingress', hole), {
    reason: 'POLICY_INGRESS', inbound: true, packet: hole, src: 2, dst: id.api, policyRef: ref.apiIn, rule: 1,
  });
  const outside = synTo(8080, '2001:db8:2::7');
  assertDropped(judge('ebm_policy_ingress', outside), {
    reason: 'POLICY_INGRESS', inbound: true, packet: outside, src: 2, dst: id.api, policyRef: ref.apiIn, rule: RULE_NONE,
  });
});

test('extension headers are walked to the TCP header: a SYN behind hop-by-hop and destination options is judged; a later fragment passes', () => {
  assertPassed(judge('ebm_policy_ingress', synTo(8080, WEB.v6, { extensions: [NEXTHDR.HOP, NEXTHDR.DEST] })));
  assert.equal(judge('ebm_policy_ingress', synTo(8080, BATCH.v6, { extensions: [NEXTHDR.HOP, NEXTHDR.DEST] })).verdict, 0);
  assert.equal(judge('ebm_policy_ingress', synTo(8080, BATCH.v6, { fragOffset: 0 })).verdict, 0, 'a first fragment carries the verdict');
  assertPassed(judge('ebm_policy_ingress', synTo(8080, BATCH.v6, { fragOffset: 185, payload: 'tail of a datagram' })));
});

test('ICMPv6 passes both ways for an isolated workload, neighbour discovery from link-local and unspecified sources included', () => {
  const ns = Buffer.from([135, 0, 0, 0, 0, 0, 0, 0]); // neighbour solicitation
  assertPassed(judge('ebm_policy_ingress', { src: 'fe80::1', dst: API.v6, proto: IPPROTO_ICMPV6, payload: ns }));
  assertPassed(judge('ebm_policy_egress', { src: 'fe80::2', dst: 'ff02::1:ff00:1', proto: IPPROTO_ICMPV6, payload: ns }));
  assertPassed(judge('ebm_policy_egress', { src: '::', dst: 'ff02::1:ff00:10', proto: IPPROTO_ICMPV6, payload: ns }));
});

test('egress over IPv6: UDP to an allowed peer and port passes; to another peer it is dropped; a spoofed IPv6 source is dropped', () => {
  assertPassed(judge('ebm_policy_egress', { src: API.v6, dst: WEB.v6, proto: IPPROTO_UDP, sport: 40000, dport: 53, payload: 'q' }));
  const other = { src: API.v6, dst: BATCH.v6, proto: IPPROTO_UDP, sport: 40000, dport: 53, payload: 'q' };
  assertDropped(judge('ebm_policy_egress', other), {
    reason: 'POLICY_EGRESS', inbound: false, packet: other, src: id.api, dst: id.batch, policyRef: ref.apiOut, rule: RULE_NONE,
  });
  const spoofed = { src: WEB.v6, dst: BATCH.v6, proto: IPPROTO_UDP, sport: 40000, dport: 53, payload: 'q' };
  const j = judge('ebm_policy_egress', spoofed);
  assert.equal(j.verdict, 0);
  assert.deepEqual(j.drops, { spoofed_source: 1 });
  assert.equal(j.events[0]?.saddr, WEB.v6);
});

test('the node\'s own IPv6 address (host identity) always reaches the workload', () => {
  assertPassed(judge('ebm_policy_ingress', synTo(9999, NODE6)));
  assertPassed(judge('ebm_policy_ingress', synTo(9999, '::1', { dst: '::1' })));
});
