import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowEvent, EventType, EventFlag, Reason, Verdict } from '../abi/structs.js';
import { emptyNames, filterFromQuery, flowLine, matches, toFlow, type NameTable } from './flow.js';

function names(): NameTable {
  const n = emptyNames();
  n.byIp.set('10.0.0.2', { namespace: 'demo', workload: 'client', identity: 256 });
  n.byIp.set('10.0.0.3', { namespace: 'demo', workload: 'web-1', identity: 257 });
  n.byCgroup.set('4242', { namespace: 'demo', workload: 'client', ip: '10.0.0.2' });
  n.byVip.set('10.96.0.10:80', 'demo/web');
  n.byBackend.set('10.0.0.3:8080', 'demo/web');
  return n;
}

// Through the codec, as the ring buffer delivers it.
const raw = (v: Parameters<typeof FlowEvent.encode>[0]) => FlowEvent.decode(FlowEvent.encode(v));

test('an HTTP event names both ends, the Service and the request', () => {
  const path = Buffer.from('/api/items?id=7');
  const f = toFlow(raw({
    type: EventType.HTTP, ts_ns: 2_000_000n, duration_ns: 1_500_000n, saddr: '10.0.0.2', sport: 40000, daddr: '10.0.0.3', dport: 8080,
    orig_daddr: '10.96.0.10', orig_dport: 80, proto: 6, http_method: 3, http_status: 503, http_path_len: path.length, http_path: path,
  }), 1, names(), 0n);
  assert.equal(f.type, 'http');
  assert.equal(f.observer, 'client');
  assert.deepEqual([f.source.workload, f.source.identity, f.destination.workload], ['client', 256, 'web-1']);
  assert.equal(f.service, 'demo/web');
  assert.equal(f.vip, '10.96.0.10:80');
  assert.deepEqual(f.http, { method: 'POST', path: '/api/items?id=7', status: 503, latencyMs: 1.5 });
  assert.match(flowLine(f), /demo\/client:40000 +-> demo\/web-1:8080 \(demo\/web\) +HTTP POST \/api\/items\?id=7 503 1\.50ms/);
});

test('close counts bytes from the source, whichever end observed it', () => {
  const base = { type: EventType.CLOSE, saddr: '10.0.0.2', sport: 40000, daddr: '10.0.0.3', dport: 8080, proto: 6, duration_ns: 1_000_000n };
  const client = toFlow(raw({ ...base, flags: EventFlag.ACTIVE, bytes_sent: 100n, bytes_received: 7n }), 1, names(), 0n);
  const server = toFlow(raw({ ...base, flags: 0, bytes_sent: 7n, bytes_received: 100n }), 2, names(), 0n);
  assert.equal(client.observer, 'client');
  assert.equal(server.observer, 'server');
  assert.deepEqual(client.bytes, { toDestination: 100, toSource: 7 });
  assert.deepEqual(server.bytes, client.bytes);
  assert.equal(client.service, 'demo/web'); // by backend: the client dialled the pod IP
});

test('a drop at connect() is named by its cgroup and carries its reason and policy', () => {
  const f = toFlow(raw({
    type: EventType.DROP, verdict: Verdict.DROPPED, reason: Reason.POLICY_EGRESS, cgroup_id: 4242n, policy_ref: 9, policy_rule: 2,
    daddr: '10.96.0.10', dport: 80, orig_daddr: '10.96.0.10', orig_dport: 80, proto: 6,
  }), 1, names(), 0n);
  assert.equal(f.verdict, 'DROPPED');
  assert.equal(f.reason, 'policy-egress');
  assert.deepEqual(f.policy, { ref: 9, rule: 2 });
  assert.deepEqual([f.source.workload, f.source.ip, f.source.identity], ['client', '10.0.0.2', 256]);
  assert.equal(f.hook, 'socket');
  assert.match(flowLine(f), /DROPPED TCP policy-egress policy=9#2/);
});

test('a reason code this agent does not know yet still shows', () => {
  const f = toFlow(raw({ type: EventType.DROP, verdict: Verdict.DROPPED, reason: 999 }), 1, emptyNames(), 0n);
  assert.equal(f.reason, 'reason-999');
});

test('filters: from, to (workload or service), namespace, verdict, protocol, status class', () => {
  const path = Buffer.from('/');
  const http = (status: number) => toFlow(raw({
    type: EventType.HTTP, saddr: '10.0.0.2', daddr: '10.0.0.3', dport: 8080, orig_daddr: '10.96.0.10', orig_dport: 80, proto: 6,
    http_method: 1, http_status: status, http_path_len: 1, http_path: path,
  }), 5, names(), 0n);
  const f = http(502);
  const q = (s: string) => filterFromQuery(new URLSearchParams(s));
  assert.ok(matches(f, q('from=client&to=web-1&namespace=demo&verdict=forwarded&protocol=http&status=5xx')));
  assert.ok(matches(f, q('to=svc:demo/web')));
  assert.ok(matches(f, q('to=web')));
  assert.ok(matches(f, q('from=demo/client')));
  assert.ok(matches(f, q('from=10.0.0.2')));
  assert.ok(matches(f, q('status=502')));
  assert.ok(!matches(f, q('status=2xx')));
  assert.ok(!matches(http(200), q('status=5xx')));
  assert.ok(!matches(f, q('from=web-1')));
  assert.ok(!matches(f, q('namespace=other')));
  assert.ok(!matches(f, q('verdict=dropped')));
  assert.ok(!matches(f, q('protocol=udp')));
  assert.ok(matches(f, q('protocol=tcp')));
  assert.ok(!matches(f, q('since=5')));
  assert.ok(matches(f, q('since=4')));
});

test('a policy drop judged per packet: hook from the flags, the policy named, filtered by reason', () => {
  const n = names();
  n.policies = ['', 'demo/web-from-client'];
  const f = toFlow(raw({
    type: EventType.DROP, verdict: Verdict.DROPPED, reason: Reason.POLICY_INGRESS, flags: EventFlag.PACKET | EventFlag.INBOUND,
    saddr: '10.0.0.2', sport: 40000, daddr: '10.0.0.3', dport: 8080, proto: 17, policy_ref: 1, policy_rule: 0xffff,
  }), 1, n, 0n);
  assert.equal(f.hook, 'skb-ingress');
  assert.equal(f.observer, 'server');
  assert.deepEqual(f.policy, { ref: 1, rule: 0xffff, name: 'demo/web-from-client' });
  assert.match(flowLine(f), /DROPPED UDP policy-ingress policy=demo\/web-from-client$/);
  const q = (s: string) => filterFromQuery(new URLSearchParams(s));
  assert.ok(matches(f, q('reason=policy-*')));
  assert.ok(matches(f, q('reason=spoofed-source,policy-ingress')));
  assert.ok(!matches(f, q('reason=policy-egress')));
  const spoofed = toFlow(raw({ type: EventType.DROP, verdict: Verdict.DROPPED, reason: Reason.SPOOFED_SOURCE, flags: EventFlag.PACKET }), 2, n, 0n);
  assert.equal(spoofed.reason, 'spoofed-source');
  assert.equal(spoofed.hook, 'skb-egress');
  assert.ok(!matches(spoofed, q('reason=policy-*')));
});
