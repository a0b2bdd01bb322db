/**
 * Issue 20, v4-mapped half: real clients that open AF_INET6 sockets and dial
 * IPv4 Services as ::ffff:VIP — Python's plain socket, Debian's
 * python3-grpcio (gRPC's C core), curl with a v4-mapped URL, the JDK's
 * HttpClient — each through a plain Service, a route that steers it to the
 * node proxy, a NetworkPolicy (a stranger denied, a friend allowed) and the
 * same-node shortcut, and seen by observe; UDP through a Service and per-packet
 * policy from AF_INET6 sockets too.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { TestMesh } from '../helpers/mesh.js';
import type { Flow } from '../../src/observe/flow.js';

const FIX = join(PACKAGE_ROOT, 'test/integration/fixtures');
const SERVER = join(FIX, 'l7-server.mjs');
const GRPC_CALL = join(FIX, 'grpc-call.py');
const SOCKPROG = join(PACKAGE_ROOT, 'test/helpers/sockprog.py');
const POLICYLAB = join(PACKAGE_ROOT, 'test/helpers/policylab.py');
/** Debian's python, which has python3-grpcio (the one first on PATH may not). */
const DEBIAN_PYTHON = '/usr/bin/python3';

let mesh: TestMesh;
let javaClasses = '';
const vip: Record<string, string> = {};

const backend = (name: string) => `---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: ${name}, namespace: vm, labels: {app: web, tier: backend}}
spec:
  ports: [{name: http, containerPort: 8080}, {name: h2, containerPort: 8081}]
  env: {HTTP_PORT: "8080", H2_PORT: "8081"}
  command: [node, ${SERVER}]
`;
const svc = (name: string, selector: string, port: number, target: number, appProtocol: string) => `---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: vm}
spec: {selector: {${selector}}, ports: [{port: ${port}, targetPort: ${target}, appProtocol: ${appProtocol}}]}
`;

const world = (m: TestMesh) => `apiVersion: ebmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {serviceCIDR: ${m.serviceCIDR}, podCIDR: ${m.podCIDR}}
---
apiVersion: v1
kind: Namespace
metadata: {name: vm}
${backend('web-1')}${backend('web-2')}---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: echo, namespace: vm, labels: {app: echo, tier: backend}}
spec:
  ports: [{name: echo, containerPort: 9000}]
  command: [python3, ${SOCKPROG}, serve-echo, "9000"]
---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: udp, namespace: vm, labels: {app: udp, tier: backend}}
spec:
  ports: [{name: main, containerPort: 81}]
  command: [python3, ${POLICYLAB}, serve, "81"]
---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: vm, labels: {role: friend}}
spec: {command: [sleep, infinity]}
---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: stranger, namespace: vm, labels: {role: stranger}}
spec: {command: [sleep, infinity]}
${svc('web', 'app: web', 80, 8080, 'http')}${svc('routed', 'app: web', 80, 8080, 'http')}${svc('grpc', 'app: web', 50051, 8081, 'grpc')}${svc('grpc-routed', 'app: web', 50051, 8081, 'grpc')}${svc('echo', 'app: echo', 9000, 9000, 'tcp')}---
apiVersion: v1
kind: Service
metadata: {name: udp, namespace: vm}
spec: {selector: {app: udp}, ports: [{port: 53, targetPort: 81, protocol: UDP}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: routed, namespace: vm}
spec:
  parentRefs: [{kind: Service, name: routed}]
  rules:
    - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-mesh, value: l7}]}}]
      backendRefs: [{name: routed, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc-routed, namespace: vm}
spec:
  parentRefs: [{kind: Service, name: grpc-routed}]
  rules: [{matches: [{method: {service: echo.Echo}}], backendRefs: [{name: grpc-routed, port: 50051}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: friends-only, namespace: vm}
spec:
  podSelector: {matchLabels: {tier: backend}}
  ingress: [{from: [{podSelector: {matchLabels: {role: friend}}}]}]
`;

type Counters = Record<string, number>;
const counters = (): Counters => (JSON.parse(mesh.ok('status', '-o', 'json')) as { datapath: { counters: Counters } }).datapath.counters;
const delta = (a: Counters, b: Counters, k: string) => (b[k] ?? 0) - (a[k] ?? 0);

function observe(...args: string[]): Flow[] {
  const out = mesh.ok('observe', '-o', 'json', '--last', '100000', ...args);
  return out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Flow);
}

/** Runs argv inside a workload of namespace vm; its stdout, trimmed (fails on a non-zero exit). */
function run(workload: string, ...argv: string[]): string {
  const r = mesh.cli('exec', `vm/${workload}`, '--', ...argv);
  assert.equal(r.code, 0, `${argv.join(' ')} in ${workload}: ${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

/** Python in a workload, with dial(ip, port, request): an AF_INET6 TCP socket; "ok <peer> <answer's first line>" or the errno's name. */
const pyDial = (workload: string, body: string) => run(workload, 'python3', '-c', `
import socket, errno, json
def dial(ip, port, request=b"GET / HTTP/1.0\\r\\n\\r\\n"):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.settimeout(5)
    try:
        s.connect((ip, port))
    except OSError as e:
        s.close(); return errno.errorcode[e.errno]
    peer = s.getpeername(); s.sendall(request); data = b""
    while True:
        b = s.recv(65536)
        if not b: break
        data += b
    s.close()
    return f"ok [{peer[0]}]:{peer[1]} {data.decode().split(chr(13) + chr(10) + chr(13) + chr(10), 1)[-1].strip()}"
${body}`);

/** The JSON body l7-server.mjs answers: which backend, and the request headers it got. */
const answer = (body: string) => JSON.parse(body) as { backend: string; headers: Record<string, string> };

before(async () => {
  mesh = new TestMesh('v4mapped');
  // The JDK compiles the client once; each run then only starts the JVM.
  javaClasses = join(mesh.dir, 'java');
  const javac = spawnSync('javac', ['-d', javaClasses, join(FIX, 'V4MappedHttp.java')], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(javac.status, 0, `javac: ${javac.stderr}`);
  mesh.ok('up', '-f', mesh.file('world.yaml', world(mesh)));
  for (const until = Date.now() + 30_000; ;) {
    const st = JSON.parse(mesh.ok('status', '-o', 'json')) as { workloads: Array<{ ready: boolean }> };
    if (st.workloads.length === 6 && st.workloads.every((w) => w.ready)) break;
    assert.ok(Date.now() < until, `workloads not ready: ${JSON.stringify(st.workloads)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const name of ['web', 'routed', 'grpc', 'grpc-routed', 'echo', 'udp']) {
    vip[name] = (JSON.parse(mesh.ok('get', 'svc', name, '-n', 'vm', '-o', 'json')) as { spec: { clusterIP: string } }).spec.clusterIP;
  }
});

after(() => mesh?.down());

test('Python, plain AF_INET6 socket: ::ffff:VIP reaches both backends through the shortcut, the route steers to the node proxy, getpeername shows the VIP', () => {
  const c0 = counters();
  const out = JSON.parse(pyDial('client', `
seen, routed = {}, []
for i in range(20):
    r = dial("::ffff:${vip.web}", 80)
    assert r.startswith("ok [::ffff:${vip.web}]:80 "), r
    b = json.loads(r.split(" ", 2)[2])["backend"]; seen[b] = seen.get(b, 0) + 1
r = dial("::ffff:${vip.routed}", 80)
assert r.startswith("ok [::ffff:${vip.routed}]:80 "), r
print(json.dumps({"seen": seen, "routed": json.loads(r.split(" ", 2)[2])}))`)) as { seen: Record<string, number>; routed: ReturnType<typeof answer> };
  assert.deepEqual(Object.keys(out.seen).sort(), ['web-1', 'web-2']);
  assert.equal(out.routed.headers['x-mesh'], 'l7', 'the node proxy applied the route');
  const c1 = counters();
  assert.ok(delta(c0, c1, 'lb_translated') >= 20);
  assert.equal(delta(c0, c1, 'l7_established'), 1, 'the steered connection was published for the proxy');
  assert.ok(delta(c0, c1, 'sc_inserted') >= 40, `both ends of each Service connection enter the shortcut: ${delta(c0, c1, 'sc_inserted')}`);
});

test('gRPC (python3-grpcio, C core) by Service name: plain, and steered by a GRPCRoute', () => {
  const c0 = counters();
  const out = run('client', DEBIAN_PYTHON, GRPC_CALL, 'grpc.vm:50051', 'grpc-routed.vm:50051').split('\n');
  assert.equal(out.length, 2, out.join('\n'));
  for (const line of out) assert.match(line, /^ok web-[12]:hi$/);
  const c1 = counters();
  assert.equal(delta(c0, c1, 'l7_established'), 1, 'the GRPCRoute service went through the node proxy');
  assert.ok(delta(c0, c1, 'sc_inserted') >= 2, 'the shortcut carried it');
});

test('curl to http://[::ffff:VIP]/: plain and steered', () => {
  const c0 = counters();
  const body = (svcName: string) => answer(run('client', 'curl', '-sgf', '-m', '5', `http://[::ffff:${vip[svcName]}]/`));
  assert.match(body('web').backend, /^web-[12]$/);
  const routed = body('routed');
  assert.equal(routed.headers['x-mesh'], 'l7');
  assert.equal(routed.headers.host, `[::ffff:${vip.routed}]`);
  assert.equal(delta(c0, counters(), 'l7_established'), 1);
});

test('Java (the JDK HttpClient, IPv6 stack) by Service name: plain and steered', () => {
  const c0 = counters();
  const out = run('client', 'java', '-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-cp', javaClasses, 'V4MappedHttp', 'http://web.vm/', 'http://routed.vm/').split('\n');
  assert.equal(out.length, 2, out.join('\n'));
  const [plain, routed] = out.map((l) => {
    const m = /^200 (.*)$/.exec(l);
    assert.ok(m, l);
    return answer(m[1]!);
  });
  assert.match(plain!.backend, /^web-[12]$/);
  assert.equal(routed!.headers['x-mesh'], 'l7');
  const c1 = counters();
  assert.equal(delta(c0, c1, 'l7_established'), 1);
  assert.ok(delta(c0, c1, 'sc_inserted') >= 2, 'the shortcut carried it');
});

test('NetworkPolicy: every client in a stranger is refused at connect (EPERM) through ::ffff:VIP, plain and steered; drops name the Service', () => {
  const drops0 = (JSON.parse(mesh.ok('policy', 'drops', '-o', 'json')) as { counts: Record<string, number> }).counts.policy_ingress ?? 0;
  assert.equal(pyDial('stranger', `print(dial("::ffff:${vip.web}", 80), dial("::ffff:${vip.routed}", 80), dial("::ffff:${vip.echo}", 9000))`), 'EPERM EPERM EPERM');
  const curl = mesh.cli('exec', 'vm/stranger', '--', 'curl', '-sgv', '-m', '5', `http://[::ffff:${vip.web}]/`);
  assert.equal(curl.code, 7, 'curl: could not connect');
  assert.match(curl.stderr, /Immediate connect fail for ::ffff:[\d.]+: Operation not permitted/);
  for (const line of run('stranger', DEBIAN_PYTHON, GRPC_CALL, 'grpc.vm:50051', 'grpc-routed.vm:50051').split('\n')) {
    assert.match(line, /^UNAVAILABLE .*Operation not permitted/);
  }
  for (const line of run('stranger', 'java', '-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-cp', javaClasses, 'V4MappedHttp', 'http://web.vm/', 'http://routed.vm/').split('\n')) {
    assert.match(line, /^error .*Operation not permitted/);
  }
  const drops = (JSON.parse(mesh.ok('policy', 'drops', '-o', 'json')) as { counts: Record<string, number> }).counts.policy_ingress ?? 0;
  assert.ok(drops - drops0 >= 8, `policy_ingress drops ${drops0} -> ${drops}`);
  const flows = observe('--type', 'drop', '--from', 'vm/stranger');
  const viaWeb = flows.find((f) => f.vip === `${vip.web}:80`);
  assert.ok(viaWeb, JSON.stringify(flows.slice(-5)));
  assert.equal(viaWeb.service, 'vm/web');
  assert.equal(viaWeb.hook, 'socket');
  assert.equal(viaWeb.reason, 'policy-ingress');
  // The friend, with the same clients, is let through (the tests above); here the plain socket again.
  assert.match(pyDial('client', `print(dial("::ffff:${vip.web}", 80), dial("::ffff:${vip.routed}", 80))`), /^ok .* ok /);
});

test('shortcut: AF_INET6 streams through ::ffff:VIP go socket to socket, bytes intact', () => {
  const c0 = counters();
  const r = mesh.sh('client', `timeout 60 python3 ${SOCKPROG} echo ::ffff:${vip.echo} 9000 4 1048576`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), '4 4', 'every connection got its bytes back');
  const c1 = counters();
  assert.ok(delta(c0, c1, 'sc_redirected_bytes') >= 8 << 20, `redirected ${delta(c0, c1, 'sc_redirected_bytes')} bytes`);
  assert.ok(delta(c0, c1, 'sc_inserted') >= 8, 'both ends of each of the 4 connections entered the sockhash');
});

test('observe: an AF_INET6 client\'s connection is reported with its Service, VIP and exact bytes, and its HTTP exchange too', async () => {
  const out = pyDial('client', `
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.settimeout(5)
s.connect(("::ffff:${vip.web}", 80)); s.sendall(b"GET /v4mapped-probe HTTP/1.0\\r\\n\\r\\n")
data = b""
while True:
    b = s.recv(65536)
    if not b: break
    data += b
print(s.getsockname()[1], len(data)); s.close()`);
  const [port, received] = out.split(' ').map(Number);
  const match = (f: Flow) => f.observer === 'client' && f.source.port === port;
  let flows: Flow[] = [];
  for (const until = Date.now() + 10_000; Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
    flows = observe('--from', 'vm/client', '--to', 'vm/web').filter(match);
    if (flows.some((f) => f.type === 'close')) break;
  }
  const connect = flows.find((f) => f.type === 'connect');
  const close = flows.find((f) => f.type === 'close');
  assert.ok(connect && close, JSON.stringify(flows));
  for (const f of [connect, close]) {
    assert.equal(f.vip, `${vip.web}:80`);
    assert.equal(f.service, 'vm/web');
    assert.equal(f.source.workload, 'client');
  }
  assert.equal(close.bytes?.toSource, received, 'bytes received, exact');
  assert.equal(close.bytes?.toDestination, 'GET /v4mapped-probe HTTP/1.0\r\n\r\n'.length, 'bytes sent, exact');
  const http = observe('--protocol', 'http', '--from', 'vm/client').filter((f) => f.http?.path === '/v4mapped-probe');
  assert.equal(http.length, 1, JSON.stringify(http));
  assert.equal(http[0]!.http!.status, 200);
  assert.equal(http[0]!.service, 'vm/web');
});

test('UDP from AF_INET6 sockets through ::ffff:VIP: the friend is answered from the VIP, the stranger\'s datagram is dropped by per-packet policy', async () => {
  const udp = (workload: string) => pyDial(workload, `
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(1)
s.sendto(b"hi", ("::ffff:${vip.udp}", 53))
try:
    data, addr = s.recvfrom(64); print(data.decode(), f"[{addr[0]}]:{addr[1]}")
except socket.timeout:
    print("timeout")`);
  assert.equal(udp('client'), `ok [::ffff:${vip.udp}]:53`);
  assert.equal(udp('stranger'), 'timeout');
  let drop: Flow | undefined;
  for (const until = Date.now() + 10_000; !drop && Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
    drop = observe('--type', 'drop', '--from', 'vm/stranger', '--to', 'vm/udp').find((f) => f.proto === 'UDP');
  }
  assert.ok(drop, 'the drop is reported');
  assert.equal(drop.hook, 'skb-ingress');
  assert.equal(drop.reason, 'policy-ingress');
});
