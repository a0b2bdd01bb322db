/**
 * Per-packet policy (bpf/policy.bpf.c, verdicts in bpf/include/policy.h)
 * in the real kernel, packet by packet through BPF_PROG_TEST_RUN, with the
 * maps holding what the agent writes for a small world (PolicyAgent:
 * identities, compiled NetworkPolicies, this node's endpoint cgroups).
 *
 * The socket of a test run is one the kernel makes for the run: its cgroup
 * is this process's (so the test moves itself into the cgroup it lists as a
 * workload's), its cookie is new each run, and it is neither a TCP nor a UDP
 * socket. Two things therefore cannot be driven this way and are tested
 * with real sockets in namespaces (test/integration/policy-enforcement):
 * the egress pass of a real TCP stream socket (judged at connect(); a
 * test-run SYN is judged like a raw socket's), and UDP replies that follow
 * a flow remembered for the socket (two runs never share a socket).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counter, EventFlag, EventType, PolUdpFlow, PolUdpFlowKey, Reason, RULE_NONE, Verdict } from '../../src/abi/structs.js';
import { PolicyMaps } from '../../src/policy/policy-maps.js';
import { PolicyAgent } from '../../src/policy/policy-agent.js';
import { decidePolicy, type PlannedEndpoint } from '../../src/policy/node-policy.js';
import type { IdentityIndex } from '../../src/policy/index.js';
import { NetworkPolicy } from '../../src/resources/networkpolicy.js';
import { Namespace, Workload } from '../../src/resources/schemas.js';
import { TypedMap } from '../../src/kernel/index.js';
import { ETH_P_IPV6, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP, type PacketSpec } from '../helpers/packet.js';
import { SkbWorld, type FlowEventRecord } from '../helpers/skb-world.js';

const NODE = '10.77.0.1';
const API = '10.77.0.10';
const WEB = '10.77.0.11';
const BATCH = '10.77.0.12';
const NS = 'shop';

const workload = (name: string, ip: string, ports: Array<{ containerPort: number; protocol?: 'TCP' | 'UDP' }> = []) => Workload.parse({
  apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload',
  metadata: { name, namespace: NS, labels: { app: name } }, spec: { ip, ports, command: ['true'] },
});
const policy = (name: string, spec: unknown) => NetworkPolicy.parse({
  apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: NS }, spec,
});

const workloads = [
  workload('api', API, [{ containerPort: 8080 }, { containerPort: 5353, protocol: 'UDP' }]),
  workload('web', WEB, [{ containerPort: 80 }, { containerPort: 53, protocol: 'UDP' }]),
  workload('batch', BATCH),
];
const policies = [
  policy('api-in', {
    podSelector: { matchLabels: { app: 'api' } },
    policyTypes: ['Ingress'],
    ingress: [
      { from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 8080 }, { protocol: 'UDP', port: 5353 }] },
      { from: [{ ipBlock: { cidr: '192.0.2.0/24', except: ['192.0.2.128/25'] } }], ports: [{ port: 8080 }] },
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
  world = new SkbWorld('polskb', ['policy.bpf.o']);
  stateDir = mkdtempSync(join(tmpdir(), 'ebtest-polskb-'));
  maps = new PolicyMaps(world.objectOf('ebm_policy_ingress'));
  agent = new PolicyAgent(maps, join(stateDir, 'identities.json'));
  // The workloads' cgroups; this process takes one's place per test.
  for (const c of ['api', 'batch', 'stray']) world.enterCgroup(c);
  const cgroupOf: Record<string, string> = { api: 'api', batch: 'batch' };
  const endpoints = (index: IdentityIndex): PlannedEndpoint[] => workloads.flatMap((w) => {
    const cg = cgroupOf[w.metadata.name];
    const identity = index.of(w.metadata.namespace, w.metadata.labels);
    return cg && identity ? [{ workload: `${w.metadata.namespace}/${w.metadata.name}`, cgroup: cg, identity, ip: w.spec.ip! }] : [];
  });
  const namespaces = [Namespace.parse({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } })];
  const plan = decidePolicy({ world: { policies, namespaces, workloads }, identities: agent.identities, hostIps: [NODE], endpoints });
  assert.ok(agent.apply(plan, (cg) => world.cgroupIdOf(cg)) > 0);
  const of = (name: string) => agent.identityOf(workloads.find((w) => w.metadata.name === name)!)!;
  id = { api: of('api'), web: of('web'), batch: of('batch') };
  const refs = agent.tables!.refs;
  ref = { apiIn: refs.indexOf(`${NS}/api-in`), apiOut: refs.indexOf(`${NS}/api-out`) };
  assert.ok(ref.apiIn > 0 && ref.apiOut > 0, JSON.stringify(refs));
});

after(() => {
  world?.cleanup();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

interface Judged {
  verdict: number;
  events: FlowEventRecord[];
  /** Drops counted per reason by this packet (only the reasons that moved). */
  drops: Record<string, number>;
  denied: bigint;
}

/** Runs one packet through a policy program; what it decided and what it reported. */
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
  src, dst: API, proto: IPPROTO_TCP, sport: 41000, dport, tcpFlags: TCP.SYN, ...extra,
});

function assertPassed(j: Judged): void {
  assert.equal(j.verdict, 1, 'the packet was dropped');
  assert.deepEqual(j.events, []);
  assert.deepEqual(j.drops, {});
  assert.equal(j.denied, 0n);
}

/** The drop event's policy fields, plus the counters that must have moved by one. */
function assertDropped(j: Judged, want: {
  reason: keyof typeof Reason; inbound: boolean; packet: PacketSpec; src: number; dst: number; policyRef: number; rule: number; cgroup: string;
}): void {
  assert.equal(j.verdict, 0, 'the packet passed');
  assert.deepEqual(j.drops, { [want.reason.toLowerCase()]: 1 });
  assert.equal(j.denied, 1n);
  assert.equal(j.events.length, 1, 'one drop event');
  const e = j.events[0]!;
  assert.ok(e.cookie > 0n, 'the event names the socket');
  assert.deepEqual({
    type: e.type, verdict: e.verdict, reason: e.reason, flags: e.flags, proto: e.proto,
    saddr: e.saddr, daddr: e.daddr, sport: e.sport, dport: e.dport,
    src_identity: e.src_identity, dst_identity: e.dst_identity, policy_ref: e.policy_ref, policy_rule: e.policy_rule, cgroup_id: e.cgroup_id,
  }, {
    type: EventType.DROP, verdict: Verdict.DROPPED, reason: Reason[want.reason],
    flags: EventFlag.PACKET | (want.inbound ? EventFlag.INBOUND : 0), proto: want.packet.proto,
    saddr: want.packet.src, daddr: want.packet.dst, sport: want.packet.sport ?? 0, dport: want.packet.dport ?? 0,
    src_identity: want.src, dst_identity: want.dst, policy_ref: want.policyRef, policy_rule: want.rule, cgroup_id: world.cgroupIdOf(want.cgroup),
  });
}

test('ingress: a SYN from an allowed identity to an allowed port passes', () => {
  world.enterCgroup('api');
  assertPassed(judge('ebm_policy_ingress', synTo(8080, WEB)));
});

test('ingress: a SYN from an identity no rule allows is dropped, counted and reported with the isolating policy', () => {
  world.enterCgroup('api');
  const packet = synTo(8080, BATCH);
  assertDropped(judge('ebm_policy_ingress', packet), {
    reason: 'POLICY_INGRESS', inbound: true, packet, src: id.batch, dst: id.api, policyRef: ref.apiIn, rule: RULE_NONE, cgroup: 'api',
  });
});

test('ingress: an allowed identity on a port no rule names is dropped', () => {
  world.enterCgroup('api');
  const packet = synTo(9090, WEB);
  assertDropped(judge('ebm_policy_ingress', packet), {
    reason: 'POLICY_INGRESS', inbound: true, packet, src: id.web, dst: id.api, policyRef: ref.apiIn, rule: RULE_NONE, cgroup: 'api',
  });
});

test('ingress: segments other than an opening SYN pass (the connection was judged when it opened)', () => {
  world.enterCgroup('api');
  assertPassed(judge('ebm_policy_ingress', synTo(9090, BATCH, { tcpFlags: TCP.ACK | TCP.PSH, payload: 'data' })));
  assertPassed(judge('ebm_policy_ingress', synTo(9090, BATCH, { tcpFlags: TCP.SYN | TCP.ACK })));
});

test('ingress: ipBlock allows its CIDR, not its except (reported with the except\'s rule), nor what lies outside', () => {
  world.enterCgroup('api');
  assertPassed(judge('ebm_policy_ingress', synTo(8080, '192.0.2.7')));
  assertPassed(judge('ebm_policy_ingress', synTo(8080, '192.0.2.127')));
  const hole = synTo(8080, '192.0.2.200');
  assertDropped(judge('ebm_policy_ingress', hole), {
    reason: 'POLICY_INGRESS', inbound: true, packet: hole, src: 2 /* world */, dst: id.api, policyRef: ref.apiIn, rule: 1, cgroup: 'api',
  });
  const outside = synTo(8080, '198.51.100.1');
  assertDropped(judge('ebm_policy_ingress', outside), {
    reason: 'POLICY_INGRESS', inbound: true, packet: outside, src: 2, dst: id.api, policyRef: ref.apiIn, rule: RULE_NONE, cgroup: 'api',
  });
  // The block's port still applies.
  assertDropped(judge('ebm_policy_ingress', synTo(9090, '192.0.2.7')), {
    reason: 'POLICY_INGRESS', inbound: true, packet: synTo(9090, '192.0.2.7'), src: 2, dst: id.api, policyRef: ref.apiIn, rule: RULE_NONE, cgroup: 'api',
  });
});

test('ingress UDP: an allowed datagram passes and starts a flow of the socket; others are dropped', () => {
  world.enterCgroup('api');
  const flows = new TypedMap(world.rawMap('ebm_pol_udp_flows'), PolUdpFlowKey, PolUdpFlow);
  const dgram = (src: string, dport: number): PacketSpec => ({ src, dst: API, proto: IPPROTO_UDP, sport: 42000, dport, payload: 'q' });
  assertPassed(judge('ebm_policy_ingress', dgram(WEB, 5353)));
  const started = [...flows.entries()].filter(([k]) => k.peer_addr === WEB && k.peer_port === 42000);
  assert.equal(started.length, 1, 'one flow remembered');
  assert.ok(started[0]![0].cookie > 0n);
  assert.deepEqual(started[0]![1], { direction: 0 /* ingress: the peer started it */, pad: 0, local_port: 5353, pad2: 0 });
  for (const [src, port, from] of [[BATCH, 5353, id.batch], [WEB, 5354, id.web]] as const) {
    const packet = dgram(src, port);
    assertDropped(judge('ebm_policy_ingress', packet), {
      reason: 'POLICY_INGRESS', inbound: true, packet, src: from, dst: id.api, policyRef: ref.apiIn, rule: RULE_NONE, cgroup: 'api',
    });
  }
});

test('ingress: the node itself, loopback, ICMP, later fragments and non-IPv4 pass', () => {
  world.enterCgroup('api');
  assertPassed(judge('ebm_policy_ingress', synTo(9999, NODE)));
  assertPassed(judge('ebm_policy_ingress', synTo(9999, '127.0.0.1')));
  assertPassed(judge('ebm_policy_ingress', { src: BATCH, dst: API, proto: IPPROTO_ICMP, payload: Buffer.from([8, 0, 0, 0, 0, 1, 0, 1]) }));
  assertPassed(judge('ebm_policy_ingress', synTo(9999, BATCH, { fragOffset: 185, payload: 'tail of a datagram' })));
  assertPassed(judge('ebm_policy_ingress', synTo(9999, BATCH, { etherType: ETH_P_IPV6 })));
});

test('egress: a datagram to an allowed peer and port passes; to any other peer it is dropped', () => {
  world.enterCgroup('api');
  const out = (dst: string, dport: number): PacketSpec => ({ src: API, dst, proto: IPPROTO_UDP, sport: 43000, dport, payload: 'q' });
  assertPassed(judge('ebm_policy_egress', out(WEB, 53)));
  const packet = out(BATCH, 53);
  assertDropped(judge('ebm_policy_egress', packet), {
    reason: 'POLICY_EGRESS', inbound: false, packet, src: id.api, dst: id.batch, policyRef: ref.apiOut, rule: RULE_NONE, cgroup: 'api',
  });
});

test('egress: a SYN from a socket that is not a TCP stream socket (raw) is judged like new traffic', () => {
  world.enterCgroup('api');
  const packet: PacketSpec = { src: API, dst: BATCH, proto: IPPROTO_TCP, sport: 44000, dport: 80, tcpFlags: TCP.SYN };
  assertDropped(judge('ebm_policy_egress', packet), {
    reason: 'POLICY_EGRESS', inbound: false, packet, src: id.api, dst: id.batch, policyRef: ref.apiOut, rule: RULE_NONE, cgroup: 'api',
  });
});

test('egress: a packet from an address not the workload\'s own is dropped as spoofed, whatever policy says', () => {
  world.enterCgroup('api');
  const packet: PacketSpec = { src: '10.77.0.99', dst: WEB, proto: IPPROTO_UDP, sport: 43000, dport: 53, payload: 'q' };
  assertDropped(judge('ebm_policy_egress', packet), {
    reason: 'SPOOFED_SOURCE', inbound: false, packet, src: id.api, dst: 0, policyRef: 0, rule: 0, cgroup: 'api',
  });
  // batch is isolated in no direction: spoofing is still refused.
  world.enterCgroup('batch');
  const forged: PacketSpec = { ...packet, src: API };
  assertDropped(judge('ebm_policy_egress', forged), {
    reason: 'SPOOFED_SOURCE', inbound: false, packet: forged, src: id.batch, dst: 0, policyRef: 0, rule: 0, cgroup: 'batch',
  });
});

test('a workload no policy isolates sends and receives anything', () => {
  world.enterCgroup('batch');
  assertPassed(judge('ebm_policy_ingress', { ...synTo(9999, '198.51.100.1'), dst: BATCH }));
  assertPassed(judge('ebm_policy_ingress', { src: API, dst: BATCH, proto: IPPROTO_UDP, sport: 1, dport: 2, payload: 'q' }));
  assertPassed(judge('ebm_policy_egress', { src: BATCH, dst: '198.51.100.1', proto: IPPROTO_TCP, sport: 45000, dport: 443, tcpFlags: TCP.SYN }));
  assertPassed(judge('ebm_policy_egress', { src: BATCH, dst: API, proto: 47 /* GRE */, payload: 'x' }));
});

test('api isolated for egress drops other protocols too; ICMP passes', () => {
  world.enterCgroup('api');
  const gre: PacketSpec = { src: API, dst: WEB, proto: 47, payload: 'x' };
  assertDropped(judge('ebm_policy_egress', gre), {
    reason: 'POLICY_EGRESS', inbound: false, packet: gre, src: id.api, dst: id.web, policyRef: ref.apiOut, rule: RULE_NONE, cgroup: 'api',
  });
  assertPassed(judge('ebm_policy_egress', { src: API, dst: BATCH, proto: IPPROTO_ICMP, payload: Buffer.from([8, 0, 0, 0, 0, 1, 0, 1]) }));
});

test('a process in a child cgroup of a workload\'s cgroup is that workload', () => {
  world.enterCgroup('api/worker');
  assertPassed(judge('ebm_policy_ingress', synTo(8080, WEB)));
  const packet = synTo(8080, BATCH);
  assertDropped(judge('ebm_policy_ingress', packet), {
    reason: 'POLICY_INGRESS', inbound: true, packet, src: id.batch, dst: id.api, policyRef: ref.apiIn, rule: RULE_NONE, cgroup: 'api/worker',
  });
});

test('a socket whose cgroup belongs to no workload is denied in both directions (no-identity)', () => {
  world.enterCgroup('stray');
  const inbound = synTo(8080, WEB);
  assertDropped(judge('ebm_policy_ingress', inbound), {
    reason: 'NO_IDENTITY', inbound: true, packet: inbound, src: 0, dst: 0, policyRef: 0, rule: 0, cgroup: 'stray',
  });
  const outbound: PacketSpec = { src: API, dst: WEB, proto: IPPROTO_UDP, sport: 43000, dport: 53, payload: 'q' };
  assertDropped(judge('ebm_policy_egress', outbound), {
    reason: 'NO_IDENTITY', inbound: false, packet: outbound, src: 0, dst: 0, policyRef: 0, rule: 0, cgroup: 'stray',
  });
});
