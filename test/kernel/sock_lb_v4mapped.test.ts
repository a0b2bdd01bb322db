/**
 * AF_INET6 sockets that dial IPv4 as v4-mapped addresses (::ffff:a.b.c.d,
 * as gRPC's C core and the JVM do) get exactly what AF_INET sockets get from
 * the socket programs: translation at connect6 (TCP and UDP), the VIP shown
 * by getpeername6 and recvmsg6, session affinity, refusal without backends,
 * connect-time policy, steering to the node proxy and into the mTLS tunnel.
 * Native IPv6 is left alone. Real programs on a real cgroup, real sockets in
 * a namespace of their own.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BpfObjectSpec, attachCgroupPinned, detachPinned, openPinnedMap, type LoadedObject } from '../../src/kernel/index.js';
import { BPF_BUILD } from '../../src/paths.js';
import { LbMaps } from '../../src/agent/lb-maps.js';
import { planLb } from '../../src/agent/lb-plan.js';
import { PolicyMaps } from '../../src/policy/policy-maps.js';
import { encodePolicy, planPolicy } from '../../src/policy/policy-plan.js';
import { applyTunnelDestinations } from '../../src/agent/mtls-maps.js';
import type { AllowEntry } from '../../src/policy/index.js';
import { cgroupId } from '../../src/host/cgroup.js';
import { Counter, L7ConnKey, L7Orig, L7Proxy, L7_ORIG_F_TUNNEL, U32Key, U64Value } from '../../src/abi/structs.js';
import type { DesiredFrontend } from '../../src/controlplane/index.js';
import { Sandbox, backendServerCode, sleep } from '../helpers/sandbox.js';

const VIP = '10.251.2.1';
const B1 = '10.250.4.2';
const B2 = '10.250.4.3';
const PROXY = '10.250.4.100';
const CLIENT_ID = 256;
const BACKEND_ID = 300;
let sb: Sandbox;
let objs: LoadedObject[] = [];
let lb: LbMaps;
let policy: PolicyMaps;
let cgid: bigint;

const m = (ip: string) => `::ffff:${ip}`;
const counter = (c: number) => objs[0]!.map('ebm_counters', U32Key, U64Value).sumPerCpu(c);
const drops = () => policy.dropCounts();

const frontends = (backends: string[], extra: Partial<DesiredFrontend> = {}): DesiredFrontend[] => [
  { service: 't/web', vip: VIP, port: 80, proto: 'TCP', backends: backends.map((ip) => ({ ip, port: 8080, workload: ip })), ...extra },
  { service: 't/web', vip: VIP, port: 53, proto: 'UDP', backends: backends.map((ip) => ({ ip, port: 8080, workload: ip })) },
  { service: 't/routed', vip: VIP, port: 81, proto: 'TCP', l7: true, backends: [{ ip: B1, port: 8080, workload: B1 }] },
];

function program(desired: DesiredFrontend[]): void {
  lb.apply(planLb(lb.read(), desired));
}

/** The client workload (identity 256) and backends (300); `isolated`: its egress allows only `allow`. */
function setPolicy(isolated: boolean, allow: AllowEntry[] = []): void {
  const desired = encodePolicy({
    ipcache: [B1, B2].map((ip) => ({ ip, identity: BACKEND_ID })),
    isolation: isolated ? [{ subject: CLIENT_ID, direction: 'egress', policyRef: 1 }] : [],
    allow, cidr: [], refs: ['', 't/egress'], workloads: [], warnings: [],
  }, [{ cgroupId: cgid, identity: CLIENT_ID }]);
  policy.apply(planPolicy(policy.read(), desired));
}

/** Python in the mesh cgroup, with `dial(ip, port)`: an AF_INET6 TCP connect, answering "ok <data> <peer>" or the errno's name. */
const py6 = (body: string, inMesh = true) => sb.python(`
import socket, errno, json
def dial(ip, port, timeout=3):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.settimeout(timeout)
    try:
        s.connect((ip, port))
    except OSError as e:
        s.close(); return errno.errorcode[e.errno]
    peer = s.getpeername(); me = s.getsockname(); data = s.recv(64).decode(); s.close()
    return f"ok {data} [{peer[0]}]:{peer[1]} [{me[0]}]:{me[1]}"
${body}`, inMesh);

before(async () => {
  sb = new Sandbox('v4mapped');
  for (const ip of [B1, B2, PROXY]) sb.ip('addr', 'add', `${ip}/32`, 'dev', 'lo');
  // What the mesh does not translate must fail here, never leave.
  sb.ip('route', 'add', 'unreachable', '10.251.2.0/24');
  // ::10.251.2.0/120, the VIPs' last 32 bits in a native IPv6 address.
  sb.ip('-6', 'route', 'add', 'unreachable', '::afb:200/120');
  sb.background(['python3', '-c', backendServerCode([[B1, 8080], [B2, 8080]])]);
  // The "proxy" answers "proxy <peer ip>:<peer port>": the address it accepted.
  sb.background(['python3', '-c', `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("${PROXY}", 15001)); s.listen(64)
while True:
    c, a = s.accept(); c.sendall(f"proxy {a[0]}:{a[1]}".encode()); c.close()
`]);
  // A native IPv6 server, which must stay reachable as it is.
  sb.background(['python3', '-c', `
import socket
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("::1", 8080)); s.listen(64)
while True:
    c, a = s.accept(); c.sendall(b"native6"); c.close()
`]);
  for (const file of ['sock_lb.bpf.o', 'l7_sockops.bpf.o']) {
    const spec = BpfObjectSpec.open(join(BPF_BUILD, file));
    objs.push(spec.load({ pinDir: sb.pinDir }));
    spec.close();
  }
  for (const o of objs) for (const p of o.programs()) attachCgroupPinned(p.fd, sb.cgroup, p.attachType, join(sb.pinDir, 'links', p.name));
  cgid = cgroupId(sb.cgroup)!;
  policy = new PolicyMaps(objs[0]!);
  setPolicy(false);
  lb = new LbMaps(objs[0]!);
  await sleep(300); // the python servers bind
});

after(() => {
  for (const o of objs) for (const p of o.programs()) detachPinned(join(sb.pinDir, 'links', p.name));
  for (const o of objs) o.close();
  objs = [];
  sb?.cleanup();
});

test('TCP: connect to ::ffff:VIP reaches every backend, stays v4-mapped, and getpeername shows the VIP', () => {
  program(frontends([B1, B2]));
  const out = JSON.parse(py6(`
seen = {}
for i in range(40):
    r = dial("${m(VIP)}", 80)
    assert r.startswith("ok "), r
    _, data, peer, me = r.split(" ")
    assert peer == "[${m(VIP)}]:80", peer
    assert me.startswith("[::ffff:10.250.4."), me  # an IPv4 connection, seen through the AF_INET6 socket
    seen[data] = seen.get(data, 0) + 1
print(json.dumps(seen))`)) as Record<string, number>;
  assert.deepEqual(Object.keys(out).sort(), [`${B1}:8080`, `${B2}:8080`]);
});

test('UDP: sendto ::ffff:VIP reaches a backend and recvfrom shows the VIP; a connected socket too', () => {
  program(frontends([B1]));
  const out = py6(`
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b"hi", ("${m(VIP)}", 53))
data, addr = s.recvfrom(64)
c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); c.settimeout(3)
c.connect(("${m(VIP)}", 53)); c.send(b"hi")
data2, addr2 = c.recvfrom(64)
print(data.decode(), addr[0], addr[1], data2.decode(), addr2[0], addr2[1], c.getpeername()[0])`);
  assert.equal(out, `${B1}:8080 ${m(VIP)} 53 ${B1}:8080 ${m(VIP)} 53 ${m(VIP)}`);
});

test('sessionAffinity ClientIP holds across AF_INET6 and AF_INET sockets of one client', () => {
  program(frontends([B1, B2], { affinityTimeout: 60 }));
  const hits = counter(Counter.LB_AFFINITY_HIT);
  const out = JSON.parse(py6(`
seen = set()
for i in range(10):
    seen.add(dial("${m(VIP)}", 80).split(" ")[1])
    s = socket.create_connection(("${VIP}", 80), timeout=3); seen.add(s.recv(64).decode()); s.close()
print(json.dumps(sorted(seen)))`)) as string[];
  assert.equal(out.length, 1, JSON.stringify(out));
  assert.ok(counter(Counter.LB_AFFINITY_HIT) >= hits + 19n, 'every connect after the first came from the affinity table');
});

test('a Service without backends refuses ::ffff:VIP at once with ECONNREFUSED', () => {
  program(frontends([]));
  const refused = counter(Counter.LB_NO_BACKEND);
  const out = py6(`
import time
t = time.monotonic(); r = dial("${m(VIP)}", 80, timeout=5)
print(r, round(time.monotonic() - t, 3))`);
  const [code, secs] = out.split(' ');
  assert.equal(code, 'ECONNREFUSED');
  assert.ok(Number(secs) < 0.5, `refused after ${secs}s`);
  assert.equal(counter(Counter.LB_NO_BACKEND), refused + 1n);
});

test('connect-time policy: an isolated client is refused with EPERM through ::ffff:VIP and ::ffff:backend, and allowed once a rule allows it', () => {
  program(frontends([B1]));
  try {
    setPolicy(true);
    const before = drops().policy_egress ?? 0;
    assert.equal(py6(`print(dial("${m(VIP)}", 80), dial("${m(B1)}", 8080))`), 'EPERM EPERM');
    assert.equal((drops().policy_egress ?? 0) - before, 2);
    setPolicy(true, [{ subject: CLIENT_ID, peer: BACKEND_ID, direction: 'egress', proto: 'TCP', port: 8080, portPrefixLen: 16, policyRef: 1, rule: 0 }]);
    assert.match(py6(`print(dial("${m(VIP)}", 80))`), new RegExp(`^ok ${B1}:8080 \\[${m(VIP)}\\]:80 `));
  } finally {
    setPolicy(false);
  }
});

test('an L7 frontend steers ::ffff:VIP to the node proxy, which finds VIP and cgroup under the IPv4 peer it accepted', () => {
  program(frontends([B1]));
  objs[0]!.map('ebm_l7_proxy', U32Key, L7Proxy).set(0, { ip: PROXY, port: 15001, pad: 0, ip6: '::' });
  try {
    const established = counter(Counter.L7_ESTABLISHED);
    const r = py6(`print(dial("${m(VIP)}", 81))`);
    const [ok, , proxyView, peer, me] = r.split(' ');
    assert.equal(ok, 'ok', r);
    assert.equal(peer, `[${m(VIP)}]:81`, 'getpeername shows the VIP');
    const [, myIp, myPort] = /^\[::ffff:([\d.]+)\]:(\d+)$/.exec(me!)!;
    assert.equal(proxyView, `${myIp}:${myPort}`, 'the proxy accepted this client, as IPv4');
    assert.equal(counter(Counter.L7_ESTABLISHED), established + 1n);
    const conns = openPinnedMap(join(sb.pinDir, 'ebm_l7_conns'), L7ConnKey, L7Orig);
    try {
      const orig = conns.get({ ip: myIp!, port: Number(myPort), pad: 0 });
      assert.ok(orig, 'published under the client (ip, port)');
      assert.deepEqual([orig.vip, orig.port, orig.flags, orig.cgroup_id], [VIP, 81, 0, cgid]);
    } finally {
      conns.raw.close();
    }
  } finally {
    objs[0]!.map('ebm_l7_proxy', U32Key, L7Proxy).set(0, { ip: '0.0.0.0', port: 0, pad: 0, ip6: '::' });
  }
});

test('a backend on another node is reached through the tunnel: ::ffff:VIP and ::ffff:pod IP go to the node proxy, flagged TUNNEL', () => {
  program(frontends([B2]));
  objs[0]!.map('ebm_l7_proxy', U32Key, L7Proxy).set(0, { ip: PROXY, port: 15001, pad: 0, ip6: '::' });
  applyTunnelDestinations(objs[0]!, [B2]);
  try {
    const tunnelled = counter(Counter.MTLS_TUNNELLED);
    const out = py6(`print(dial("${m(VIP)}", 80)); print(dial("${m(B2)}", 8080))`).split('\n');
    const conns = openPinnedMap(join(sb.pinDir, 'ebm_l7_conns'), L7ConnKey, L7Orig);
    try {
      for (const [i, shown] of [[0, `[${m(VIP)}]:80`], [1, `[${m(B2)}]:8080`]] as const) {
        const [ok, , proxyView, peer, me] = out[i]!.split(' ');
        assert.equal(ok, 'ok', out[i]);
        assert.equal(peer, shown, 'getpeername shows what was dialled');
        const [, myIp, myPort] = /^\[::ffff:([\d.]+)\]:(\d+)$/.exec(me!)!;
        assert.equal(proxyView, `${myIp}:${myPort}`);
        const orig = conns.get({ ip: myIp!, port: Number(myPort), pad: 0 });
        assert.deepEqual(orig && [orig.vip, orig.port, orig.flags], [B2, 8080, L7_ORIG_F_TUNNEL], 'the proxy learns the backend to tunnel to');
      }
    } finally {
      conns.raw.close();
    }
    assert.equal(counter(Counter.MTLS_TUNNELLED), tunnelled + 2n);
  } finally {
    applyTunnelDestinations(objs[0]!, []);
    objs[0]!.map('ebm_l7_proxy', U32Key, L7Proxy).set(0, { ip: '0.0.0.0', port: 0, pad: 0, ip6: '::' });
  }
});

test('native IPv6 is left as it is, also where its last 32 bits spell a VIP, while ::ffff:VIP is translated', () => {
  program(frontends([B1]));
  const translated = counter(Counter.LB_TRANSLATED);
  const out = py6(`print(dial("::1", 8080)); print(dial("::afb:201", 80)); print(dial("${m(VIP)}", 80))`);
  const [native, lookalike, mapped] = out.split('\n');
  assert.match(native!, /^ok native6 \[::1\]:8080 /);
  assert.equal(lookalike, 'EHOSTUNREACH', '::10.251.2.1 (::afb:201) is no Service: untouched, it hits its unreachable route');
  assert.match(mapped!, new RegExp(`^ok ${B1}:8080 \\[${m(VIP)}\\]:80 `));
  assert.equal(counter(Counter.LB_TRANSLATED), translated + 1n);
});

test('::ffff:VIP is translated for processes in the mesh cgroup only', () => {
  program(frontends([B1]));
  assert.equal(py6(`print(dial("${m(VIP)}", 80))`, false), 'EHOSTUNREACH');
  assert.match(py6(`print(dial("${m(VIP)}", 80))`), new RegExp(`^ok ${B1}:8080 `));
});
