/**
 * Native IPv6 through the socket programs: an AF_INET6 socket dialling an
 * IPv6 VIP is served from the IPv6 maps exactly as an IPv4 one is from the
 * IPv4 maps — translation at connect6 (TCP) and sendmsg6 (UDP), the VIP
 * shown by getpeername6 and recvmsg6, session affinity, refusal without
 * backends, connect-time policy (identities and IPv6 ipBlocks), steering to
 * the node proxy's IPv6 address and into the mTLS tunnel. A dual-stack
 * Service (a frontend per family, ids shared by the slots) serves both
 * families side by side. Real programs on a real cgroup, real sockets in a
 * namespace of their own.
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
import type { AllowEntry, CidrEntry } from '../../src/policy/index.js';
import { cgroupId } from '../../src/host/cgroup.js';
import { Counter, L7Conn6Key, L7Orig, L7Proxy, L7_ORIG_F_TUNNEL, U32Key, U64Value } from '../../src/abi/structs.js';
import type { DesiredFrontend } from '../../src/controlplane/index.js';
import { Sandbox, backendServerCode, sleep } from '../helpers/sandbox.js';

const VIP = 'fd00:eb6:96::1';
const VIP4 = '10.251.6.1';
const B1 = 'fd00:eb6:244::2';
const B2 = 'fd00:eb6:244::3';
const B1v4 = '10.250.6.2';
const PROXY = '10.250.6.100';
const PROXY6 = 'fd00:eb6:244::100';
const CLIENT_ID = 256;
const BACKEND_ID = 300;
let sb: Sandbox;
let objs: LoadedObject[] = [];
let lb: LbMaps;
let policy: PolicyMaps;
let cgid: bigint;

const counter = (c: number) => objs[0]!.map('ebm_counters', U32Key, U64Value).sumPerCpu(c);
const drops = () => policy.dropCounts();
const setProxy = (ip: string, port: number, ip6: string) => objs[0]!.map('ebm_l7_proxy', U32Key, L7Proxy).set(0, { ip, port, pad: 0, ip6 });

const be = (ips: string[], port = 8080) => ips.map((ip) => ({ ip, port, workload: ip }));
/** A dual-stack Service (web: a frontend per family), a UDP port, and an L7 one. */
const frontends = (backends: string[], extra: Partial<DesiredFrontend> = {}): DesiredFrontend[] => [
  { service: 't/web', vip: VIP, port: 80, proto: 'TCP', backends: be(backends), ...extra },
  { service: 't/web', vip: VIP4, port: 80, proto: 'TCP', backends: be([B1v4]) },
  { service: 't/web', vip: VIP, port: 53, proto: 'UDP', backends: be(backends) },
  { service: 't/routed', vip: VIP, port: 81, proto: 'TCP', l7: true, backends: be([B1]) },
];

function program(desired: DesiredFrontend[]): void {
  lb.apply(planLb(lb.read(), desired));
}

/** The client workload (identity 256, its own address fd00:eb6:244::9) and backends (300); `isolated`: its egress allows only `allow` (and `cidr`). */
function setPolicy(isolated: boolean, allow: AllowEntry[] = [], cidr: CidrEntry[] = []): void {
  const desired = encodePolicy({
    ipcache: [B1, B2, B1v4].map((ip) => ({ ip, identity: BACKEND_ID })),
    isolation: isolated ? [{ subject: CLIENT_ID, direction: 'egress', policyRef: 1 }] : [],
    allow, cidr, refs: ['', 't/egress'], workloads: [], warnings: [],
  }, [{ cgroupId: cgid, identity: CLIENT_ID }]);
  policy.apply(planPolicy(policy.read(), desired));
}

/** Python in the mesh cgroup, with `dial(ip, port)`: an AF_INET6 TCP connect, answering "ok <data> <peer> <me>" or the errno's name. */
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
  sb = new Sandbox('socklb6');
  for (const ip of [B1, B2, PROXY6]) sb.ip('-6', 'addr', 'add', `${ip}/128`, 'dev', 'lo', 'nodad');
  for (const ip of [B1v4, PROXY]) sb.ip('addr', 'add', `${ip}/32`, 'dev', 'lo');
  // What the mesh does not translate must fail here, never leave.
  sb.ip('-6', 'route', 'add', 'unreachable', 'fd00:eb6:96::/112');
  sb.ip('route', 'add', 'unreachable', '10.251.6.0/24');
  sb.background(['python3', '-c', backendServerCode([[B1, 8080], [B2, 8080], [B1v4, 8080]])]);
  // The "proxy" answers "proxy <peer ip>:<peer port>": the address it accepted, on both families.
  sb.background(['python3', '-c', `
import socket, threading
def serve(ip):
    s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((ip, 15001)); s.listen(64)
    while True:
        c, a = s.accept(); c.sendall(f"proxy {a[0]}:{a[1]}".encode()); c.close()
for ip in ["${PROXY}", "${PROXY6}"]:
    threading.Thread(target=serve, args=(ip,), daemon=True).start()
threading.Event().wait(120)
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

test('TCP: connect to an IPv6 VIP reaches every backend over IPv6, and getpeername shows the VIP; its IPv4 VIP is served beside it', () => {
  program(frontends([B1, B2]));
  const out = JSON.parse(py6(`
seen = {}
for i in range(40):
    r = dial("${VIP}", 80)
    assert r.startswith("ok "), r
    _, data, peer, me = r.split(" ")
    assert peer == "[${VIP}]:80", peer
    assert me.startswith("[fd00:eb6:244::"), me
    seen[data] = seen.get(data, 0) + 1
s = socket.create_connection(("${VIP4}", 80), timeout=3); seen[s.recv(64).decode()] = 1; assert s.getpeername() == ("${VIP4}", 80); s.close()
print(json.dumps(seen))`)) as Record<string, number>;
  assert.deepEqual(Object.keys(out).sort(), [`${B1v4}:8080`, `${B1}:8080`, `${B2}:8080`]);
  // The two families' frontends are two entries in two maps, with ids of one space.
  const ids = [...lb.frontends.entries(), ...lb.frontends6.entries()].map(([, v]) => v.id);
  assert.equal(new Set(ids).size, ids.length, `frontend ids unique across families: ${ids}`);
  assert.equal(lb.frontends6.raw.info.keySize, 20);
});

test('UDP: sendto an IPv6 VIP reaches a backend and recvfrom shows the VIP; a connected socket too', () => {
  program(frontends([B1]));
  const out = py6(`
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b"hi", ("${VIP}", 53))
data, addr = s.recvfrom(64)
c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); c.settimeout(3)
c.connect(("${VIP}", 53)); c.send(b"hi")
data2, addr2 = c.recvfrom(64)
print(data.decode(), addr[0], addr[1], data2.decode(), addr2[0], addr2[1], c.getpeername()[0])`);
  assert.equal(out, `${B1}:8080 ${VIP} 53 ${B1}:8080 ${VIP} 53 ${VIP}`);
});

test('sessionAffinity ClientIP holds for an IPv6 VIP', () => {
  program(frontends([B1, B2], { affinityTimeout: 60 }));
  const hits = counter(Counter.LB_AFFINITY_HIT);
  const out = JSON.parse(py6(`
seen = set()
for i in range(20):
    seen.add(dial("${VIP}", 80).split(" ")[1])
print(json.dumps(sorted(seen)))`)) as string[];
  assert.equal(out.length, 1, JSON.stringify(out));
  assert.ok(counter(Counter.LB_AFFINITY_HIT) >= hits + 19n, 'every connect after the first came from the affinity table');
});

test('an IPv6 VIP without backends is refused at once with ECONNREFUSED', () => {
  program(frontends([]));
  const refused = counter(Counter.LB_NO_BACKEND);
  const out = py6(`
import time
t = time.monotonic(); r = dial("${VIP}", 80, timeout=5)
print(r, round(time.monotonic() - t, 3))`);
  const [code, secs] = out.split(' ');
  assert.equal(code, 'ECONNREFUSED');
  assert.ok(Number(secs) < 0.5, `refused after ${secs}s`);
  assert.equal(counter(Counter.LB_NO_BACKEND), refused + 1n);
});

test('connect-time policy over IPv6: an isolated client is refused with EPERM through the VIP and to the backend; an identity rule or an IPv6 ipBlock allows', () => {
  program(frontends([B1]));
  try {
    setPolicy(true);
    const before = drops().policy_egress ?? 0;
    assert.equal(py6(`print(dial("${VIP}", 80), dial("${B1}", 8080))`), 'EPERM EPERM');
    assert.equal((drops().policy_egress ?? 0) - before, 2);
    setPolicy(true, [{ subject: CLIENT_ID, peer: BACKEND_ID, direction: 'egress', proto: 'TCP', port: 8080, portPrefixLen: 16, policyRef: 1, rule: 0 }]);
    assert.match(py6(`print(dial("${VIP}", 80))`), new RegExp(`^ok ${B1}:8080 \\[${VIP}\\]:80 `));
    // fd00:eb6:244::/64 except fd00:eb6:244::3/128, as the compiler flattens it: a group, and a hole.
    const GROUP = 0x80000001;
    setPolicy(true, [{ subject: CLIENT_ID, peer: GROUP, direction: 'egress', proto: 'TCP', port: 0, portPrefixLen: 0, policyRef: 1, rule: 0 }], [
      { subject: CLIENT_ID, direction: 'egress', family: 6, addr: 'fd00:eb6:244::', prefixLen: 64, group: GROUP, policyRef: 0, rule: 0 },
      { subject: CLIENT_ID, direction: 'egress', family: 6, addr: B2, prefixLen: 128, group: 0, policyRef: 1, rule: 0 },
    ]);
    assert.equal(policy.read().cidr6.size, 2, 'the IPv6 regions are in the IPv6 map');
    assert.equal(policy.read().cidr.size, 0);
    const [allowed, hole] = py6(`print(dial("${B1}", 8080)); print(dial("${B2}", 8080))`).split('\n');
    assert.match(allowed!, new RegExp(`^ok ${B1}:8080 `));
    assert.equal(hole, 'EPERM');
  } finally {
    setPolicy(false);
  }
});

test('an L7 frontend steers an IPv6 VIP to the proxy\'s IPv6 address, which finds VIP and cgroup in ebm_l7_conns6; without one it is balanced as plain L4', () => {
  program(frontends([B1]));
  setProxy(PROXY, 15001, PROXY6);
  try {
    const established = counter(Counter.L7_ESTABLISHED);
    const r = py6(`print(dial("${VIP}", 81))`);
    const [ok, , proxyView, peer, me] = r.split(' ');
    assert.equal(ok, 'ok', r);
    assert.equal(peer, `[${VIP}]:81`, 'getpeername shows the VIP');
    const [, myIp, myPort] = /^\[([0-9a-f:]+)\]:(\d+)$/.exec(me!)!;
    assert.equal(proxyView, `${myIp}:${myPort}`, 'the proxy accepted this client, over IPv6');
    assert.equal(counter(Counter.L7_ESTABLISHED), established + 1n);
    const conns = openPinnedMap(join(sb.pinDir, 'ebm_l7_conns6'), L7Conn6Key, L7Orig);
    try {
      const orig = conns.get({ ip: myIp!, port: Number(myPort), pad: 0 });
      assert.ok(orig, 'published under the client (ip, port)');
      assert.deepEqual([orig.vip, orig.port, orig.flags, orig.cgroup_id], [VIP, 81, 0, cgid]);
    } finally {
      conns.raw.close();
    }
    setProxy(PROXY, 15001, '::');
    const noProxy = counter(Counter.L7_NO_PROXY);
    assert.match(py6(`print(dial("${VIP}", 81))`), new RegExp(`^ok ${B1}:8080 \\[${VIP}\\]:81 `), 'no IPv6 proxy address: the backend directly');
    assert.equal(counter(Counter.L7_NO_PROXY), noProxy + 1n);
  } finally {
    setProxy('0.0.0.0', 0, '::');
  }
});

test('a backend on another node is reached through the tunnel: the IPv6 VIP and the IPv6 pod address go to the proxy, flagged TUNNEL', () => {
  program(frontends([B2]));
  setProxy(PROXY, 15001, PROXY6);
  applyTunnelDestinations(objs[0]!, [B2]);
  try {
    const tunnelled = counter(Counter.MTLS_TUNNELLED);
    const out = py6(`print(dial("${VIP}", 80)); print(dial("${B2}", 8080))`).split('\n');
    const conns = openPinnedMap(join(sb.pinDir, 'ebm_l7_conns6'), L7Conn6Key, L7Orig);
    try {
      for (const [i, shown] of [[0, `[${VIP}]:80`], [1, `[${B2}]:8080`]] as const) {
        const [ok, , proxyView, peer, me] = out[i]!.split(' ');
        assert.equal(ok, 'ok', out[i]);
        assert.equal(peer, shown, 'getpeername shows what was dialled');
        const [, myIp, myPort] = /^\[([0-9a-f:]+)\]:(\d+)$/.exec(me!)!;
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
    setProxy('0.0.0.0', 0, '::');
  }
});

test('an IPv6 VIP is translated for processes in the mesh cgroup only: outside it hits its unreachable route', () => {
  program(frontends([B1]));
  assert.equal(py6(`print(dial("${VIP}", 80))`, false), 'EHOSTUNREACH');
  assert.match(py6(`print(dial("${VIP}", 80))`), new RegExp(`^ok ${B1}:8080 `));
});
