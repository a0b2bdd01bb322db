/**
 * Issue 20, native half: a dual-stack mesh (IPv6 service and pod ranges),
 * its workloads with an IPv6 address beside their IPv4 one, and real
 * clients opening AF_INET6 sockets to IPv6 and dual-stack Services —
 * Python's plain socket, curl -6 by name, the JDK's HttpClient — each
 * through a plain Service, a route that steers it to the node proxy (which
 * listens on the node's IPv6 address), a NetworkPolicy (a stranger denied,
 * a friend allowed) and the same-node shortcut; UDP through an IPv6 VIP;
 * observe's flows and HTTP events with IPv6 addresses; policy explain over
 * IPv6; a dual-stack client reaching a dual-stack Service over either
 * family; and the safety routes of both families.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT, instancePaths } from '../../src/paths.js';
import { TestMesh } from '../helpers/mesh.js';
import type { Flow } from '../../src/observe/flow.js';

const FIX = join(PACKAGE_ROOT, 'test/integration/fixtures');
const SERVER = join(FIX, 'l7-server.mjs');
const SOCKPROG = join(PACKAGE_ROOT, 'test/helpers/sockprog.py');
const NS = 'six';

let mesh: TestMesh;
let javaClasses = '';
const vip: Record<string, string[]> = {};
/** A Service's VIP of a family. */
const v6 = (svc: string) => vip[svc]!.find((ip) => ip.includes(':'))!;
const v4 = (svc: string) => vip[svc]!.find((ip) => !ip.includes(':'))!;

const backend = (name: string) => `---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: ${name}, namespace: ${NS}, labels: {app: web, tier: backend}}
spec:
  ports: [{name: http, containerPort: 8080}]
  env: {HTTP_PORT: "8080", H2_PORT: "8081"}
  command: [node, ${SERVER}]
`;
const svc = (name: string, selector: string, port: number, target: number, families: string, protocol = 'TCP') => `---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${NS}}
spec: {selector: {${selector}}, ${families}, ports: [{port: ${port}, targetPort: ${target}, protocol: ${protocol}}]}
`;
/** An IPv6 UDP echo that answers "ok" (a datagram server on ::). */
const UDP6 = 'import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); s.bind(("::",81))\nwhile True:\n  d,a=s.recvfrom(64); s.sendto(b"ok",a)';

const world = (m: TestMesh) => `apiVersion: ebmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {serviceCIDR: ${m.serviceCIDR}, podCIDR: ${m.podCIDR}, serviceCIDRv6: "${m.serviceCIDRv6}", podCIDRv6: "${m.podCIDRv6}"}
---
apiVersion: v1
kind: Namespace
metadata: {name: ${NS}}
${backend('web-1')}${backend('web-2')}---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: echo, namespace: ${NS}, labels: {app: echo, tier: backend}}
spec:
  ports: [{name: echo, containerPort: 9000}]
  command: [python3, ${SOCKPROG}, serve-echo, "9000", ""]
---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: udp, namespace: ${NS}, labels: {app: udp, tier: backend}}
spec:
  ports: [{name: dns, containerPort: 81, protocol: UDP}]
  command: [python3, -c, ${JSON.stringify(UDP6)}]
---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: ${NS}, labels: {role: friend}}
spec: {command: [sleep, infinity]}
---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: stranger, namespace: ${NS}, labels: {role: stranger}}
spec: {command: [sleep, infinity]}
${svc('web', 'app: web', 80, 8080, 'ipFamilyPolicy: RequireDualStack')}${svc('web6', 'app: web', 80, 8080, 'ipFamilies: [IPv6]')}${svc('routed6', 'app: web', 80, 8080, 'ipFamilies: [IPv6]')}${svc('echo6', 'app: echo', 9000, 9000, 'ipFamilies: [IPv6]')}${svc('udp6', 'app: udp', 53, 81, 'ipFamilies: [IPv6]', 'UDP')}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: routed6, namespace: ${NS}}
spec:
  parentRefs: [{kind: Service, name: routed6}]
  rules:
    - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-mesh, value: l7}]}}]
      backendRefs: [{name: routed6, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: friends-only, namespace: ${NS}}
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

/** Runs argv inside a workload of the namespace; its stdout, trimmed (fails on a non-zero exit). */
function run(workload: string, ...argv: string[]): string {
  const r = mesh.cli('exec', `${NS}/${workload}`, '--', ...argv);
  assert.equal(r.code, 0, `${argv.join(' ')} in ${workload}: ${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

/** Python in a workload, with dial(ip, port): an AF_INET6 TCP socket; "ok [peer]:port <answer body>" or the errno's name. */
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
const java = (workload: string, ...urls: string[]) =>
  run(workload, 'java', '-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-cp', javaClasses, 'V4MappedHttp', ...urls).split('\n');

before(async () => {
  mesh = new TestMesh('ipv6');
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
  for (const name of ['web', 'web6', 'routed6', 'echo6', 'udp6']) {
    vip[name] = (JSON.parse(mesh.ok('get', 'svc', name, '-n', NS, '-o', 'json')) as { spec: { clusterIPs: string[] } }).spec.clusterIPs;
  }
});

after(() => mesh?.down());

test('dual-stack resources: every workload has an IPv6 address of the node\'s /64; Services a VIP per family as their policy asks', () => {
  const wls = JSON.parse(mesh.ok('get', 'wl', '-n', NS, '-o', 'json')) as Array<{ spec: { ip: string; ipv6: string } }>;
  const prefix = mesh.podCIDRv6.replace(/::\/64$/, ':');
  for (const w of wls) assert.ok(w.spec.ipv6.startsWith(prefix), `${w.spec.ipv6} in ${mesh.podCIDRv6}`);
  assert.equal(vip.web!.length, 2);
  assert.ok(v4('web') && v6('web'));
  assert.equal(vip.web6!.length, 1);
  assert.ok(vip.web6![0]!.includes(':'));
  const hosts = run('client', 'cat', '/etc/hosts');
  assert.match(hosts, new RegExp(`^${v6('web').replace(/\./g, '\\.')} web web\\.${NS} `, 'm'), 'the IPv6 VIP by name');
  assert.match(hosts, new RegExp(`^${v4('web').replace(/\./g, '\\.')} web web\\.${NS} `, 'm'), 'and the IPv4 one');
});

test('Python, AF_INET6 socket to IPv6 VIPs: both backends over IPv6 through the shortcut, the route steers to the node proxy, getpeername shows the VIP', () => {
  const c0 = counters();
  const out = JSON.parse(pyDial('client', `
seen, routed = {}, []
for i in range(20):
    r = dial("${v6('web6')}", 80)
    assert r.startswith("ok [${v6('web6')}]:80 "), r
    b = json.loads(r.split(" ", 2)[2])["backend"]; seen[b] = seen.get(b, 0) + 1
r = dial("${v6('routed6')}", 80)
assert r.startswith("ok [${v6('routed6')}]:80 "), r
print(json.dumps({"seen": seen, "routed": json.loads(r.split(" ", 2)[2])}))`)) as { seen: Record<string, number>; routed: ReturnType<typeof answer> };
  assert.deepEqual(Object.keys(out.seen).sort(), ['web-1', 'web-2']);
  assert.equal(out.routed.headers['x-mesh'], 'l7', 'the node proxy applied the route');
  const c1 = counters();
  assert.ok(delta(c0, c1, 'lb_translated') >= 20);
  assert.equal(delta(c0, c1, 'l7_established'), 1, 'the steered connection was published for the proxy');
  assert.ok(delta(c0, c1, 'sc_inserted') >= 40, `both ends of each Service connection enter the shortcut: ${delta(c0, c1, 'sc_inserted')}`);
});

test('curl -6 by name: an IPv6 Service, a steered one; a dual-stack Service by name over either family', () => {
  const c0 = counters();
  const get = (...args: string[]) => {
    const out = run('client', 'curl', '-sf', '-m', '5', '-w', '\\n%{remote_ip}', ...args);
    const nl = out.lastIndexOf('\n');
    return { body: answer(out.slice(0, nl)), ip: out.slice(nl + 1) };
  };
  const plain = get('-6', `http://web6.${NS}/`);
  assert.match(plain.body.backend, /^web-[12]$/);
  assert.equal(plain.ip, v6('web6'));
  const routed = get('--ipv6', `http://routed6.${NS}/`);
  assert.equal(routed.body.headers['x-mesh'], 'l7');
  assert.equal(routed.ip, v6('routed6'));
  assert.equal(delta(c0, counters(), 'l7_established'), 1);
  // One name, two families: the dual-stack client takes either.
  assert.equal(get('-6', `http://web.${NS}/`).ip, v6('web'));
  assert.equal(get('-4', `http://web.${NS}/`).ip, v4('web'));
});

test('Java (the JDK HttpClient) by the name of IPv6 Services: plain and steered', () => {
  const c0 = counters();
  const [plain, routed] = java('client', `http://web6.${NS}/`, `http://routed6.${NS}/`).map((l) => {
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

test('NetworkPolicy over IPv6: a stranger is refused at connect (EPERM) by every client, plain and steered; the friend is let through; drops name the Service', () => {
  const drops0 = (JSON.parse(mesh.ok('policy', 'drops', '-o', 'json')) as { counts: Record<string, number> }).counts.policy_ingress ?? 0;
  assert.equal(pyDial('stranger', `print(dial("${v6('web6')}", 80), dial("${v6('routed6')}", 80), dial("${v6('echo6')}", 9000))`), 'EPERM EPERM EPERM');
  const curl = mesh.cli('exec', `${NS}/stranger`, '--', 'curl', '-sv', '-6', '-m', '5', `http://web6.${NS}/`);
  assert.equal(curl.code, 7, 'curl: could not connect');
  assert.match(curl.stderr, /Operation not permitted/);
  for (const line of java('stranger', `http://web6.${NS}/`, `http://routed6.${NS}/`)) assert.match(line, /^error .*Operation not permitted/);
  const drops = (JSON.parse(mesh.ok('policy', 'drops', '-o', 'json')) as { counts: Record<string, number>; events: Array<{ hook?: string; dst: string }> });
  assert.ok((drops.counts.policy_ingress ?? 0) - drops0 >= 6, `policy_ingress drops ${drops0} -> ${drops.counts.policy_ingress}`);
  assert.ok(drops.events.some((e) => e.hook === 'connect6' && e.dst.startsWith('[')), JSON.stringify(drops.events.slice(-3)));
  const flows = observe('--type', 'drop', '--from', `${NS}/stranger`);
  const viaWeb = flows.find((f) => f.vip === `[${v6('web6')}]:80`);
  assert.ok(viaWeb, JSON.stringify(flows.slice(-5)));
  assert.equal(viaWeb.service, `${NS}/web6`);
  assert.equal(viaWeb.hook, 'socket');
  assert.equal(viaWeb.reason, 'policy-ingress');
  assert.equal(viaWeb.source.workload, 'stranger');
  assert.ok(viaWeb.destination.ip.includes(':'), 'judged on its IPv6 backend');
  assert.match(pyDial('client', `print(dial("${v6('web6')}", 80), dial("${v6('routed6')}", 80))`), /^ok .* ok /);
});

test('policy explain over IPv6: a Service at its IPv6 VIP, and an IPv6 address in brackets', () => {
  const deny = mesh.cli('policy', 'explain', '--from', `${NS}/stranger`, '--to', 'web6', '-o', 'json');
  assert.equal(deny.code, 3, deny.stderr);
  const e = JSON.parse(deny.stdout) as Array<{ verdict: string; service: { ip: string }; flow: { family: number }; ingress: { decidedBy: string } }>;
  assert.ok(e.length >= 2 && e.every((x) => x.verdict === 'deny' && x.service.ip === v6('web6') && x.flow.family === 6), deny.stdout);
  const ok = mesh.cli('policy', 'explain', '--from', `${NS}/client`, '--to', `[${v6('web')}]:80`, '-o', 'json');
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  // A dual-stack Service by name: explained at both VIPs.
  const both = JSON.parse(mesh.ok('policy', 'explain', '--from', `${NS}/client`, '--to', 'web', '-o', 'json')) as Array<{ service: { ip: string } }>;
  assert.deepEqual([...new Set(both.map((x) => x.service.ip))].sort(), [...vip.web!].sort());
});

test('shortcut: IPv6 streams through an IPv6 VIP go socket to socket, bytes intact', () => {
  const c0 = counters();
  const r = mesh.sh(`${NS}/client`, `timeout 60 python3 ${SOCKPROG} echo ${v6('echo6')} 9000 4 1048576`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), '4 4', 'every connection got its bytes back');
  const c1 = counters();
  assert.ok(delta(c0, c1, 'sc_redirected_bytes') >= 8 << 20, `redirected ${delta(c0, c1, 'sc_redirected_bytes')} bytes`);
  assert.ok(delta(c0, c1, 'sc_inserted') >= 8, 'both ends of each of the 4 connections entered the sockhash');
});

test('shortcut: a blocking IPv6 client stays on plain TCP, as an IPv4 one does (the same admission rules), its bytes intact', () => {
  // A blocking socket would read through the sockmap path, whose blocking
  // recv() can return EAGAIN (docs/shortcut.md): neither end may enter.
  const c0 = counters();
  const out = pyDial('client', `
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.connect(("${v6('echo6')}", 9000))
sent = bytes(range(256)) * 256
s.sendall(sent); s.shutdown(socket.SHUT_WR); data = b""
while True:
    b = s.recv(65536)
    if not b: break
    data += b
s.close()
print(s.gettimeout(), len(data), data == sent)`);
  assert.equal(out, `None ${1 << 16} True`, 'a blocking socket, its bytes echoed intact');
  const c1 = counters();
  assert.equal(delta(c0, c1, 'sc_inserted'), 0, JSON.stringify(c1));
  assert.equal(delta(c0, c1, 'sc_redirected_bytes'), 0);
});

test('observe: an IPv6 connection is reported with its Service, IPv6 VIP and exact bytes, and its HTTP exchange too', async () => {
  const out = pyDial('client', `
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.settimeout(5)
s.connect(("${v6('web6')}", 80)); s.sendall(b"GET /ipv6-probe HTTP/1.0\\r\\n\\r\\n")
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
    flows = observe('--from', `${NS}/client`, '--to', `${NS}/web6`).filter(match);
    if (flows.some((f) => f.type === 'close')) break;
  }
  const connect = flows.find((f) => f.type === 'connect');
  const close = flows.find((f) => f.type === 'close');
  assert.ok(connect && close, JSON.stringify(flows));
  for (const f of [connect, close]) {
    assert.equal(f.vip, `[${v6('web6')}]:80`);
    assert.equal(f.service, `${NS}/web6`);
    assert.equal(f.source.workload, 'client');
    assert.ok(f.source.ip.includes(':') && f.destination.ip.includes(':'), JSON.stringify(f));
  }
  assert.equal(close.bytes?.toSource, received, 'bytes received, exact');
  assert.equal(close.bytes?.toDestination, 'GET /ipv6-probe HTTP/1.0\r\n\r\n'.length, 'bytes sent, exact');
  const http = observe('--protocol', 'http', '--from', `${NS}/client`).filter((f) => f.http?.path === '/ipv6-probe');
  assert.equal(http.length, 1, JSON.stringify(http));
  assert.equal(http[0]!.http!.status, 200);
  assert.equal(http[0]!.service, `${NS}/web6`);
  // Metrics name IPv6 flows by their workloads, as IPv4 ones.
  const paths = instancePaths(mesh.instance);
  const addr = readFileSync(join(paths.runDir, 'metrics.addr'), 'utf8').trim();
  const token = readFileSync(join(paths.stateDir, 'metrics.token'), 'utf8').trim();
  const metrics = await (await fetch(`http://${addr}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  assert.match(metrics, new RegExp(`source_workload="client"[^}]*destination_workload="web-[12]"[^}]*destination_service="${NS}/web6"`));
});

test('UDP to an IPv6 VIP: the friend is answered from the VIP; the stranger\'s datagram is dropped by per-packet policy', async () => {
  const udp = (workload: string) => pyDial(workload, `
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(1)
s.sendto(b"hi", ("${v6('udp6')}", 53))
try:
    data, addr = s.recvfrom(64); print(data.decode(), f"[{addr[0]}]:{addr[1]}")
except socket.timeout:
    print("timeout")`);
  assert.equal(udp('client'), `ok [${v6('udp6')}]:53`);
  assert.equal(udp('stranger'), 'timeout');
  let drop: Flow | undefined;
  for (const until = Date.now() + 10_000; !drop && Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
    drop = observe('--type', 'drop', '--from', `${NS}/stranger`, '--to', `${NS}/udp`).find((f) => f.proto === 'UDP');
  }
  assert.ok(drop, 'the drop is reported');
  assert.equal(drop.hook, 'skb-ingress');
  assert.equal(drop.reason, 'policy-ingress');
  assert.ok(drop.destination.ip.includes(':'));
});

test('safety: the host and every workload namespace have unreachable routes for the IPv6 service and pod ranges', () => {
  const host = spawnSync('ip', ['-6', 'route', 'show', 'type', 'unreachable'], { encoding: 'utf8' }).stdout;
  for (const c of [mesh.serviceCIDRv6, mesh.podCIDRv6]) assert.match(host, new RegExp(`^unreachable ${c.replace(/\//, '\\/')} .*metric 4242`, 'm'), `host: ${c}`);
  const p = instancePaths(mesh.instance);
  for (const w of ['client', 'stranger', 'web-1']) {
    const routes = spawnSync('ip', ['-n', `${p.netnsPrefix}${NS}.${w}`, '-6', 'route'], { encoding: 'utf8' }).stdout;
    for (const c of [mesh.serviceCIDRv6, mesh.podCIDRv6]) assert.match(routes, new RegExp(`^unreachable ${c.replace(/\//, '\\/')} .*metric 4242`, 'm'), `${w}: ${c}`);
  }
});
