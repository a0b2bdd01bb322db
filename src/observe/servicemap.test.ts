import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';
import { flowsOf, normalizeFlow } from './servicemap-flow.js';
import { buildServiceMap, edgeFlows, percentile, type MapInput } from './servicemap.js';

// A recorded minute of the demo (see test/fixtures/flows/demo.ndjson): client -> Service web -> web-1..3,
// two connections to web-2 denied by its ingress policy, one 503 from web-3, one direct call to web-1's
// address, one refused connection to an address outside the mesh, one flow older than the window.
const recorded = readFileSync(join(PACKAGE_ROOT, 'test/fixtures/flows/demo.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const flows = flowsOf({ flows: recorded });

const web = (i: number) => ({ namespace: 'demo', name: `web-${i}`, labels: { app: 'web' }, serviceAccount: 'web', ip: `10.245.1.${i + 1}`, phase: 'Running', ready: true });
const input = (over: Partial<MapInput> = {}): MapInput => ({
  now: Date.parse('2025-01-01T12:01:00.000Z'),
  windowSeconds: 60,
  trustDomain: 'cluster.local',
  workloads: [web(1), web(2), web(3), { namespace: 'demo', name: 'client', labels: { app: 'client' }, serviceAccount: 'client', ip: '10.245.1.5', phase: 'Running', ready: true }],
  services: [{ namespace: 'demo', name: 'web', clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: ['http 80/TCP'] }],
  others: [
    { kind: 'NetworkPolicy', metadata: { namespace: 'demo', name: 'web-ingress' }, spec: { podSelector: { matchLabels: { app: 'web' } } } },
    { kind: 'NetworkPolicy', metadata: { namespace: 'other', name: 'elsewhere' }, spec: { podSelector: {} } },
    { kind: 'HTTPRoute', metadata: { namespace: 'demo', name: 'web-canary' }, spec: { parentRefs: [{ kind: 'Service', name: 'web' }] } },
  ],
  flows,
  ...over,
});

test('recorded flows parse, every record', () => {
  assert.equal(flows.length, recorded.length);
  assert.equal(flows.filter((f) => f.verdict === 'denied').length, 2, 'a policy drop reads as denied');
  assert.equal(flows.filter((f) => f.verdict === 'error').length, 1);
});

test('nodes: every service and workload, plus addresses outside the mesh', () => {
  const m = buildServiceMap(input());
  assert.deepEqual(m.nodes.map((n) => n.id).sort(), ['ext:192.0.2.7', 'svc:demo/web', 'wl:demo/client', 'wl:demo/web-1', 'wl:demo/web-2', 'wl:demo/web-3']);
  const svc = m.nodes.find((n) => n.id === 'svc:demo/web')!;
  assert.deepEqual(svc.workloads, ['wl:demo/web-1', 'wl:demo/web-2', 'wl:demo/web-3']);
  assert.deepEqual(svc.policies, ['demo/web-ingress']);
  assert.deepEqual(svc.routes, ['HTTPRoute demo/web-canary']);
  const w2 = m.nodes.find((n) => n.id === 'wl:demo/web-2')!;
  assert.deepEqual(w2.services, ['svc:demo/web']);
  assert.deepEqual(w2.identities, { serviceAccount: 'web', spiffe: 'spiffe://cluster.local/ns/demo/sa/web', numeric: [1002] });
  assert.deepEqual(m.nodes.find((n) => n.id === 'wl:demo/client')!.policies, []);
});

test('edges: client to the service, the service to each backend, direct and outside calls', () => {
  const m = buildServiceMap(input());
  const e = Object.fromEntries(m.edges.map((x) => [x.id, x]));
  assert.deepEqual(Object.keys(e).sort(), [
    'svc:demo/web>wl:demo/web-1', 'svc:demo/web>wl:demo/web-2', 'svc:demo/web>wl:demo/web-3',
    'wl:demo/client>ext:192.0.2.7', 'wl:demo/client>svc:demo/web', 'wl:demo/client>wl:demo/web-1',
  ]);
  // 12 HTTP exchanges (one 503) and 2 denied connections; connects and closes of the HTTP ones are not requests,
  // and the denials are counted apart, outside the success rate
  const front = e['wl:demo/client>svc:demo/web']!;
  assert.equal(front.kind, 'request');
  assert.deepEqual(front.metrics, { requests: 12, rate: 0.2, successRate: 0.9167, denied: 2, p50Ms: 3.5, p99Ms: 6.5 });
  assert.equal(front.state, 'partly-denied');
  assert.deepEqual(front.protocols, ['http', 'tcp']);
  const b1 = e['svc:demo/web>wl:demo/web-1']!;
  assert.equal(b1.kind, 'backend');
  assert.deepEqual(b1.metrics, { requests: 4, rate: 0.067, successRate: 1, denied: 0, p50Ms: 2.5, p99Ms: 5.5 });
  assert.equal(b1.state, 'ok');
  assert.equal(e['svc:demo/web>wl:demo/web-2']!.state, 'partly-denied');
  assert.equal(e['svc:demo/web>wl:demo/web-3']!.metrics.successRate, 0.75);
  assert.equal(e['svc:demo/web>wl:demo/web-3']!.state, 'failing');
  assert.equal(e['wl:demo/client>wl:demo/web-1']!.metrics.requests, 1, 'a TCP-only edge counts connections');
  assert.equal(e['wl:demo/client>ext:192.0.2.7']!.metrics.successRate, 0);
  assert.equal(m.flowsCounted, 12 + 12 + 2 + 1 + 1);
});

test('node metrics: inbound sums its edges, each counted its own way; outbound only what it asked', () => {
  const m = buildServiceMap(input());
  const n = Object.fromEntries(m.nodes.map((x) => [x.id, x]));
  assert.equal(n['wl:demo/web-1']!.metrics.requests, 5, '4 HTTP through the service + 1 direct connection');
  assert.equal(n['svc:demo/web']!.metrics.requests, 12, 'the 2 denied connections are not requests');
  assert.equal(n['svc:demo/web']!.outbound.requests, 0, 'a service forwards, it does not ask');
  assert.equal(n['wl:demo/client']!.outbound.requests, 14);
  assert.equal(n['wl:demo/client']!.metrics.requests, 0);
  assert.equal(n['wl:demo/web-2']!.metrics.denied, 2);
});

test('a denied-only edge is denied; no traffic is idle; no flow source still gives nodes', () => {
  const onlyDenied = flows.filter((f) => f.verdict === 'denied');
  const m = buildServiceMap(input({ flows: onlyDenied }));
  assert.ok(m.edges.every((e) => e.state === 'denied'));
  const none = buildServiceMap(input({ flows: undefined }));
  assert.equal(none.flowsAvailable, false);
  assert.equal(none.edges.length, 0);
  assert.equal(none.nodes.length, 5);
  assert.equal(none.nodes[0]!.metrics.successRate, null);
});

test('the window: flows outside it do not count', () => {
  const m = buildServiceMap(input({ now: Date.parse('2025-01-01T11:58:30.000Z') }));
  assert.deepEqual(m.edges.map((e) => e.id), ['svc:demo/web>wl:demo/web-1', 'wl:demo/client>svc:demo/web']);
});

test('flows placed by address when they carry no names; VIP without a backend ends at the service', () => {
  const bare = [
    { time: '2025-01-01T12:00:10Z', type: 'connect', src: { ip: '10.245.1.5', port: 1 }, dst: { ip: '10.245.1.3', port: 8080 }, service: { ip: '10.96.0.10', name: 'nope' } },
    { time: '2025-01-01T12:00:11Z', type: 'drop', verdict: 'dropped', reason: 'no-backend', src: { ip: '10.245.1.5', port: 2 }, dst: { ip: '10.96.0.10', port: 80 } },
  ];
  const m = buildServiceMap(input({ flows: flowsOf(bare) }));
  assert.deepEqual(m.edges.map((e) => `${e.id} ${e.state}`), [
    'svc:demo/web>wl:demo/web-2 ok', 'wl:demo/client>svc:demo/web failing',
  ]);
});

test('edgeFlows: the flows of one edge, newest first, bounded', () => {
  const got = edgeFlows(input(), 'svc:demo/web>wl:demo/web-2', 3);
  assert.equal(got.length, 3);
  assert.ok(got[0]!.time >= got[1]!.time && got[1]!.time >= got[2]!.time);
  assert.equal(got[0]!.verdict, 'denied');
  assert.equal(edgeFlows(input(), 'wl:demo/client>svc:demo/web', 100).length, 12 + 12 + 2);
});

test('percentile is nearest-rank', () => {
  assert.equal(percentile([], 0.5), null);
  assert.equal(percentile([1, 2, 3, 4], 0.5), 2);
  assert.equal(percentile([1, 2, 3, 4], 0.99), 4);
  assert.equal(percentile([7], 0.01), 7);
});

test('normalizeFlow: other spellings of the same flow', () => {
  const f = normalizeFlow({ ts: 1735732800000, proto: 'TCP', verdict: 'DROPPED', reason: 'POLICY_EGRESS', source: 'demo/client', destination: { ip: '10.0.0.1', port: '80' }, latencyNs: 2_500_000 });
  assert.deepEqual(f, {
    time: '2025-01-01T12:00:00.000Z', verdict: 'denied', protocol: 'tcp',
    source: { namespace: 'demo', workload: 'client' }, destination: { ip: '10.0.0.1', port: 80 }, latencyMs: 2.5, reason: 'POLICY_EGRESS',
  });
  assert.equal(normalizeFlow({ nothing: 1 }), undefined);
  assert.equal(normalizeFlow('x'), undefined);
  assert.equal(normalizeFlow({ time: 't', l7: { code: 502 } })!.http!.status, 502);
  assert.equal(normalizeFlow({ time: 't', verdict: 'dropped', reason: 'no-backend' })!.verdict, 'dropped');
  for (const f of flows) assert.deepEqual(normalizeFlow(f), f, 'a normalized flow stays as it is (the page reads what the API normalized)');
});

test('flows as the observe branch serves them (src/observe/flow.ts there) place on the same edges', () => {
  const ep = (ip: string, port: number, workload?: string) => ({ ip, port, ...(workload ? { namespace: 'demo', workload } : {}) });
  const observed = flowsOf({ flows: [
    { seq: 1, time: '2025-01-01T12:00:10.000Z', type: 'http', verdict: 'FORWARDED', proto: 'TCP', observer: 'client', cookie: '1',
      source: ep('10.245.1.5', 40000, 'client'), destination: ep('10.245.1.2', 8080, 'web-1'), service: 'demo/web', vip: '10.96.0.10:80',
      http: { method: 'GET', path: '/', status: 200, latencyMs: 1.25 } },
    { seq: 2, time: '2025-01-01T12:00:11.000Z', type: 'drop', verdict: 'DROPPED', reason: 'policy-ingress', proto: 'TCP', observer: 'client', cookie: '2',
      source: ep('10.245.1.5', 40001, 'client'), destination: ep('10.245.1.3', 8080, 'web-2'), service: 'demo/web', vip: '10.96.0.10:80' },
    { seq: 3, time: '2025-01-01T12:00:12.000Z', type: 'drop', verdict: 'DROPPED', reason: 'no-backend', proto: 'TCP', observer: 'client', cookie: '3',
      source: ep('10.245.1.5', 0, 'client'), destination: ep('10.96.0.10', 80), vip: '10.96.0.10:80' },
  ], stats: {} });
  assert.deepEqual(observed.map((f) => [f.type, f.protocol, f.verdict, f.service?.name]), [
    ['http', 'http', 'forwarded', 'web'], ['drop', 'tcp', 'denied', 'web'], ['drop', 'tcp', 'dropped', undefined],
  ]);
  assert.equal(observed[0]!.latencyMs, 1.25);
  const m = buildServiceMap(input({ flows: observed }));
  assert.deepEqual(m.edges.map((e) => `${e.id} ${e.state}`), [
    'svc:demo/web>wl:demo/web-1 ok', 'svc:demo/web>wl:demo/web-2 denied', 'wl:demo/client>svc:demo/web partly-denied',
  ]);
});
