/**
 * Issue 4's acceptance: real clients (curl, h2load, the loadgen) and a real
 * nginx in lab workloads; flows and HTTP exchanges read back through the
 * real CLI, and /metrics parsed by the Prometheus client library's parser.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { TestMesh, serviceWithoutEndpoints } from '../helpers/mesh.js';
import { idleWorkload, nginxWorkload } from '../../bench/scenarios/mesh-lab.js';
import { runLoadgen } from '../../bench/loadgen.js';
import type { Flow } from '../../src/observe/flow.js';

let mesh: TestMesh;
const SOCKPROG = join(PACKAGE_ROOT, 'test/helpers/sockprog.py');

const resources = `apiVersion: v1
kind: Namespace
metadata: {name: obs}
---
${nginxWorkload('web', 'web', {
  namespace: 'obs',
  locations: 'location /fail { return 503 "down\\n"; } location /missing { return 404; } location / { return 200 "ok\\n"; }',
})}---
${nginxWorkload('sink', 'sink', { namespace: 'obs', workers: 2, http: 'keepalive_requests 1000000;' })}---
${idleWorkload('client', { namespace: 'obs' })}---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: obs}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: sink, namespace: obs}
spec: {selector: {app: sink}, ports: [{port: 80, targetPort: http}]}
`;

function observe(...args: string[]): Flow[] {
  const out = mesh.ok('observe', '-o', 'json', '--last', '100000', ...args);
  return out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Flow);
}

const metricsAddr = () => readFileSync(`/run/ebmesh/${mesh.instance}/metrics.addr`, 'utf8').trim();
/** What Prometheus is given to scrape with (docs/security.md): the node's metrics token. */
const metricsToken = () => readFileSync(`/var/lib/ebmesh/${mesh.instance}/metrics.token`, 'utf8').trim();

/** Every sample of /metrics, as the Prometheus client library parses it. */
function scrape(): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const r = spawnSync('/usr/bin/python3', ['-c', `
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
req = urllib.request.Request("http://${metricsAddr()}/metrics", headers={"Authorization": "Bearer " + sys.stdin.read()})
text = urllib.request.urlopen(req).read().decode()
out = []
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        out.append({"name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
`], { encoding: 'utf8', timeout: 30_000, maxBuffer: 64 << 20, input: metricsToken() });
  assert.equal(r.status, 0, `the Prometheus parser rejected /metrics: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function sum(samples: ReturnType<typeof scrape>, name: string, where: Record<string, string>): number {
  return samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

function workloadIp(name: string): string {
  const w = JSON.parse(mesh.ok('get', 'workloads', name, '-n', 'obs', '-o', 'json')) as { spec: { ip: string } } | Array<{ spec: { ip: string } }>;
  return (Array.isArray(w) ? w[0]! : w).spec.ip;
}

before(() => {
  // Any free port for /metrics: tests may run beside a real node on 9464.
  process.env.EBMESH_METRICS_ADDR = '127.0.0.1:0';
  mesh = new TestMesh('obs');
  mesh.ok('up', '-f', mesh.meshConfigFile(), '-f', mesh.file('obs.yaml', resources));
  mesh.ok('apply', '-f', mesh.file('lazy.yaml', serviceWithoutEndpoints('obs')));
});

after(() => mesh?.down());

test('curl requests appear with source, destination, service, method, path and status', () => {
  const r = mesh.sh('client', 'curl -s -o /dev/null http://web.obs/hello/world?x=1; curl -s -o /dev/null http://web.obs/fail; curl -s -o /dev/null -X POST -d abc http://web.obs/missing');
  assert.equal(r.code, 0, r.stderr);
  const http = observe('--protocol', 'http', '--to', 'obs/web');
  const byPath = new Map(http.map((f) => [f.http!.path, f]));
  const hello = byPath.get('/hello/world?x=1');
  assert.ok(hello, JSON.stringify(http));
  assert.equal(hello.source.workload, 'client');
  assert.equal(hello.source.namespace, 'obs');
  assert.equal(hello.destination.workload, 'web');
  assert.equal(hello.service, 'obs/web');
  assert.equal(hello.http!.method, 'GET');
  assert.equal(hello.http!.status, 200);
  assert.ok(hello.http!.latencyMs > 0 && hello.http!.latencyMs < 1000);
  assert.ok(hello.source.identity && hello.destination.identity && hello.source.identity !== hello.destination.identity);
  assert.equal(byPath.get('/fail')?.http!.status, 503);
  assert.equal(byPath.get('/missing')?.http!.method, 'POST');
  assert.equal(byPath.get('/missing')?.http!.status, 404);
  // Both ends are mesh sockets: the exchange is still reported once.
  assert.equal(http.filter((f) => f.http!.path === '/fail').length, 1);

  const fivexx = observe('--status', '5xx');
  assert.deepEqual(fivexx.map((f) => f.http!.path), ['/fail']);
});

test('a connection shows connect, accept and close with exact payload bytes from both ends', async () => {
  const ip = workloadIp('sink');
  // A one-shot server in the sink workload: reads to EOF, answers 5000 bytes, closes.
  // Both ends are sockprog.py's non-blocking sockets: the same-node shortcut
  // carries this connection.
  const server = spawn(join(PACKAGE_ROOT, 'bin/ebmesh'), ['--instance', mesh.instance, 'exec', 'sink', '--', 'timeout', '20', 'python3', SOCKPROG, 'serve-exact', '9000'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  server.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const until = Date.now() + 10_000;
  while (!out.includes('ready') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  const r = mesh.sh('client', `timeout 20 python3 ${SOCKPROG} exact ${ip} 9000`);
  assert.equal(r.code, 0, r.stderr);
  await once(server, 'exit');
  assert.equal(out.trim().split('\n').pop(), '100000');
  const [port, got] = r.stdout.trim().split(' ').map(Number);
  assert.equal(got, 5000);
  const conn = observe('--from', 'obs/client', '--to', 'obs/sink').filter((f) => f.source.port === port);
  assert.deepEqual(conn.map((f) => `${f.type}/${f.observer}`).sort(), ['accept/server', 'close/client', 'close/server', 'connect/client']);
  for (const c of conn.filter((f) => f.type === 'close')) {
    assert.equal(c.verdict, 'FORWARDED');
    assert.deepEqual(c.bytes, { toDestination: 100000, toSource: 5000 }, `${c.observer}'s count`);
    assert.ok(c.srttUs! > 0 && c.durationMs! > 0);
  }
});

test('h2load over HTTP/1.1 keep-alive: every request appears', () => {
  const r = mesh.sh('client', 'h2load --h1 -n 200 -c 4 http://web.obs/h2load');
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /200 succeeded/);
  const http = observe('--protocol', 'http', '--from', 'client').filter((f) => f.http!.path === '/h2load');
  assert.equal(http.length, 200);
  assert.ok(http.every((f) => f.http!.status === 200 && f.destination.workload === 'web'));
});

test('a Service without endpoints: the refused connect is a drop with reason no-backend', () => {
  const r = mesh.sh('client', 'curl -s -m 2 http://empty.obs/; echo rc=$?');
  assert.match(r.stdout, /rc=7/); // ECONNREFUSED at connect()
  const drops = observe('--verdict', 'dropped');
  assert.equal(drops.length, 1, JSON.stringify(drops));
  assert.equal(drops[0]!.type, 'drop');
  assert.equal(drops[0]!.reason, 'no-backend');
  assert.equal(drops[0]!.service, 'obs/empty');
  assert.equal(drops[0]!.source.workload, 'client');
  assert.match(mesh.ok('observe', '--verdict', 'DROPPED'), /DROPPED TCP no-backend/);
});

test('/metrics parses with the Prometheus parser and counts what was sent', () => {
  const m = scrape();
  // 3 curl + 200 h2load requests to web, all from client.
  assert.equal(sum(m, 'ebmesh_http_requests_total', { destination_workload: 'web', source_workload: 'client' }), 203);
  assert.equal(sum(m, 'ebmesh_http_requests_total', { destination_service: 'obs/web', status_class: '5xx' }), 1);
  assert.equal(sum(m, 'ebmesh_http_requests_total', { destination_service: 'obs/web', status_class: '4xx' }), 1);
  assert.equal(sum(m, 'ebmesh_http_request_duration_seconds_count', { destination_workload: 'web' }), 203);
  assert.equal(sum(m, 'ebmesh_drops_total', { reason: 'no-backend' }), 1);
  assert.equal(sum(m, 'ebmesh_tcp_bytes_total', { destination_workload: 'sink', source_workload: 'client', direction: 'to_destination' }), 100000);
  assert.equal(sum(m, 'ebmesh_tcp_bytes_total', { destination_workload: 'sink', source_workload: 'client', direction: 'to_source' }), 5000);
  // 3 curl + h2load's 4 connections from the client (the readiness probes come from the host).
  assert.equal(sum(m, 'ebmesh_tcp_connections_opened_total', { source_workload: 'client', destination_workload: 'web' }), 7);
  assert.equal(sum(m, 'ebmesh_flow_events_lost_total', {}), 0);
  assert.ok(sum(m, 'ebmesh_agent_bpf_programs', {}) >= 7);
  assert.ok(m.some((s) => s.name === 'ebmesh_agent_bpf_map_entries' && s.labels.map === 'ebm_http_pending'));
});

test('/metrics answers only a scraper with the node\'s token: 401 without one or with another', async () => {
  const url = `http://${metricsAddr()}/metrics`;
  const none = await fetch(url);
  assert.equal(none.status, 401);
  assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="ebmesh metrics"');
  assert.doesNotMatch(await none.text(), /ebmesh_/);
  assert.equal((await fetch(url, { headers: { authorization: `Bearer ${'x'.repeat(metricsToken().length)}` } })).status, 401);
  assert.equal((await fetch(url, { headers: { authorization: `Bearer ${metricsToken()}` } })).status, 200);
});

test('top shows the golden metrics per service', () => {
  const r = JSON.parse(mesh.ok('top', '--once', '-o', 'json', '--window', '60')) as { services: Array<{ service: string; requests: number; successRate: number; p99Ms: number }> };
  const web = r.services.find((s) => s.service === 'obs/web');
  assert.ok(web, JSON.stringify(r));
  assert.equal(web.requests, 203);
  assert.ok(web.successRate > 0.99 && web.successRate < 1);
});

test('10,000 requests/s for 10 s: requests seen plus events lost add up to requests sent', async () => {
  const ip = workloadIp('sink');
  const before = scrape();
  const res = await runLoadgen({
    url: `http://${ip}:8080/load`, rate: 10_000, durationS: 10, connections: 32, warmupS: 0,
    prefix: [join(PACKAGE_ROOT, 'bin/ebmesh'), '--instance', mesh.instance, 'exec', 'client', '--'],
  });
  assert.equal(res.requests.errors, 0, JSON.stringify(res.errors));
  assert.ok(res.achievedRate > 9000, `achieved ${res.achievedRate}/s`);
  const after = scrape();
  const seen = sum(after, 'ebmesh_http_requests_total', { destination_workload: 'sink' }) - sum(before, 'ebmesh_http_requests_total', { destination_workload: 'sink' });
  const lost = sum(after, 'ebmesh_flow_events_lost_total', {}) - sum(before, 'ebmesh_flow_events_lost_total', {});
  assert.equal(seen + lost, res.requests.completed, `seen ${seen} + lost ${lost} vs completed ${res.requests.completed} (sent ${res.requests.sent})`);
});

test('observe -f streams exchanges as they happen, decoded from the kernel records', async () => {
  const follower = spawn(join(PACKAGE_ROOT, 'bin/ebmesh'), ['--instance', mesh.instance, 'observe', '-f', '-o', 'json', '--protocol', 'http', '--to', 'obs/web'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    let out = '';
    follower.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const seen = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Flow).filter((f) => f.http?.path === '/followed');
    // Requests until the stream shows one: the follower registers a moment after it starts.
    const until = Date.now() + 15_000;
    while (!seen().length && Date.now() < until) {
      assert.equal(mesh.sh('client', 'curl -sf -o /dev/null http://web.obs/followed').code, 0);
      await new Promise((r) => setTimeout(r, 200));
    }
    const f = seen()[0];
    assert.ok(f, `no /followed exchange in the stream: ${out.slice(-500)}`);
    assert.deepEqual([f.type, f.source.workload, f.destination.workload, f.service, f.http!.method, f.http!.status], ['http', 'client', 'web', 'obs/web', 'GET', 200]);
    // The stream and the history agree on the flow, seq included.
    const kept = mesh.ok('observe', '-o', 'json', '--last', '1000', '--protocol', 'http', '--to', 'obs/web').trim().split('\n')
      .map((l) => JSON.parse(l) as Flow).find((h) => h.seq === f.seq);
    assert.deepEqual(kept, f);
  } finally {
    follower.kill();
    await once(follower, 'exit');
  }
});
