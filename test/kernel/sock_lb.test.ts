/**
 * The socket LB programs in the real kernel, driven by real sockets: the
 * sock_addr hooks cannot be driven by BPF_PROG_TEST_RUN, so a namespace
 * holds two backends on a the namespace's loopback and a client joins the test cgroup.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BpfObjectSpec, attachCgroupPinned, detachPinned, pinnedMapInfo, VerifierError, type LoadedObject } from '../../src/kernel/index.js';

const BPF_F_NO_PREALLOC = 1;
import { BPF_BUILD } from '../../src/paths.js';
import { LbMaps } from '../../src/agent/lb-maps.js';
import { planLb } from '../../src/agent/lb-plan.js';
import { PolicyMaps } from '../../src/policy/policy-maps.js';
import { cgroupId } from '../../src/host/cgroup.js';
import { encodeEndpoint } from '../../src/policy/policy-plan.js';
import type { DesiredFrontend } from '../../src/controlplane/index.js';
import { Sandbox, backendServerCode, sleep } from '../helpers/sandbox.js';

const VIP = '10.251.0.1';
const B1 = '10.250.1.2';
const B2 = '10.250.1.3';
let sb: Sandbox;
let obj: LoadedObject;
let lb: LbMaps;

function program(desired: DesiredFrontend[]): void {
  lb.apply(planLb(lb.read(), desired));
}

const web = (backends: string[], extra: Partial<DesiredFrontend> = {}): DesiredFrontend[] => [
  { service: 't/web', vip: VIP, port: 80, proto: 'TCP', backends: backends.map((ip) => ({ ip, port: 8080, workload: ip })), ...extra },
  { service: 't/web', vip: VIP, port: 53, proto: 'UDP', backends: backends.map((ip) => ({ ip, port: 8080, workload: ip })) },
];

const connectMany = (n: number) => `
import socket, json
seen = {}
for i in range(${n}):
    s = socket.create_connection(("${VIP}", 80), timeout=3)
    peer = s.getpeername()
    data = s.recv(64).decode()
    s.close()
    seen[data] = seen.get(data, 0) + 1
    assert peer == ("${VIP}", 80), peer
print(json.dumps(seen))`;

before(async () => {
  sb = new Sandbox('socklb');
  sb.ip('addr', 'add', `${B1}/32`, 'dev', 'lo');
  sb.ip('addr', 'add', `${B2}/32`, 'dev', 'lo');
  // What the mesh does not translate must fail here, never leave.
  sb.ip('route', 'add', 'unreachable', '10.251.0.0/24');
  sb.background(['python3', '-c', backendServerCode([[B1, 8080], [B2, 8080]])]);
  const spec = BpfObjectSpec.open(join(BPF_BUILD, 'sock_lb.bpf.o'));
  obj = spec.load({ pinDir: sb.pinDir });
  spec.close();
  for (const p of obj.programs()) attachCgroupPinned(p.fd, sb.cgroup, p.attachType, join(sb.pinDir, 'links', p.name));
  lb = new LbMaps(obj);
  // connect4 also enforces policy, which refuses a mesh socket whose cgroup
  // has no identity: the test cgroup is a workload no policy isolates.
  new PolicyMaps(obj).apply([{ map: 'endpoints', op: 'put', ...encodeEndpoint({ cgroupId: cgroupId(sb.cgroup)!, identity: 256 }) }]);
  await sleep(300); // the python servers bind
});

after(() => {
  for (const p of obj?.programs() ?? []) detachPinned(join(sb.pinDir, 'links', p.name));
  obj?.close();
  sb?.cleanup();
});

test('a connect to the VIP reaches a backend, and getpeername shows the VIP', () => {
  program(web([B1, B2]));
  const seen = JSON.parse(sb.python(connectMany(40))) as Record<string, number>;
  assert.deepEqual(Object.keys(seen).sort(), [`${B1}:8080`, `${B2}:8080`]);
});

test('a removed backend gets no new connection', () => {
  program(web([B2]));
  const seen = JSON.parse(sb.python(connectMany(30))) as Record<string, number>;
  assert.deepEqual(seen, { [`${B2}:8080`]: 30 });
});

test('a service without backends refuses at once with ECONNREFUSED', () => {
  program(web([]));
  const out = sb.python(`
import socket, time, errno
t = time.monotonic()
try:
    socket.create_connection(("${VIP}", 80), timeout=5); print("connected")
except OSError as e:
    print(errno.errorcode[e.errno], round(time.monotonic() - t, 3))`);
  const [code, secs] = out.split(' ');
  assert.equal(code, 'ECONNREFUSED');
  assert.ok(Number(secs) < 0.5, `refused after ${secs}s`);
});

test('UDP: sendto the VIP reaches a backend and the reply comes from the VIP', () => {
  program(web([B1]));
  const out = sb.python(`
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b"hi", ("${VIP}", 53))
data, addr = s.recvfrom(64)
print(data.decode(), addr[0], addr[1])`);
  assert.equal(out, `${B1}:8080 ${VIP} 53`);
});

test('sessionAffinity ClientIP keeps a client on one backend', () => {
  program(web([B1, B2], { affinityTimeout: 60 }));
  const seen = JSON.parse(sb.python(connectMany(20))) as Record<string, number>;
  assert.equal(Object.keys(seen).length, 1, JSON.stringify(seen));
});

test('processes outside the mesh cgroup are untouched', () => {
  program(web([B1, B2]));
  const out = sb.python(`
import socket, errno
try:
    socket.create_connection(("${VIP}", 80), timeout=3); print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])`, false);
  assert.equal(out, 'EHOSTUNREACH'); // the namespace's unreachable route, untranslated
});

test('maps are pinned: a second load reuses their contents, and links update in place', () => {
  program(web([B1]));
  const spec = BpfObjectSpec.open(join(BPF_BUILD, 'sock_lb.bpf.o'));
  const again = spec.load({ pinDir: sb.pinDir });
  spec.close();
  try {
    const lb2 = new LbMaps(again);
    assert.equal(lb2.read().frontends.length, 2);
    for (const p of again.programs()) {
      assert.equal(attachCgroupPinned(p.fd, sb.cgroup, p.attachType, join(sb.pinDir, 'links', p.name)).updated, true);
    }
    const seen = JSON.parse(sb.python(connectMany(5))) as Record<string, number>;
    assert.deepEqual(seen, { [`${B1}:8080`]: 5 });
  } finally {
    again.close();
  }
});

test('a second load that asks for other map sizes or flags reuses the pinned maps as they are and says which', () => {
  program(web([B1]));
  const before = pinnedMapInfo(join(sb.pinDir, 'ebm_lb4_revnat'))!;
  // The per-connection maps are preallocated; maps only user space writes are not.
  assert.equal(before.flags & BPF_F_NO_PREALLOC, 0);
  assert.equal(pinnedMapInfo(join(sb.pinDir, 'ebm_lb4_frontends'))!.flags & BPF_F_NO_PREALLOC, BPF_F_NO_PREALLOC);
  assert.equal(pinnedMapInfo(join(sb.pinDir, 'ebm_nothing_here')), undefined);
  const spec = BpfObjectSpec.open(join(BPF_BUILD, 'sock_lb.bpf.o'));
  const again = spec.load({ pinDir: sb.pinDir, maxEntries: { ebm_lb4_revnat: before.maxEntries * 2 } });
  spec.close();
  try {
    assert.deepEqual(again.keptPinned, [{ name: 'ebm_lb4_revnat', pinned: { maxEntries: before.maxEntries, flags: before.flags }, wanted: { maxEntries: before.maxEntries * 2, flags: before.flags } }]);
    assert.equal(again.rawMap('ebm_lb4_revnat').info.maxEntries, before.maxEntries);
    assert.equal(new LbMaps(again).read().frontends.length, 2);
  } finally {
    again.close();
  }
});

test('a program the verifier rejects surfaces with the verifier log', () => {
  const spec = BpfObjectSpec.open(join(BPF_BUILD, 'fixtures', 'verifier_reject.bpf.o'));
  try {
    assert.throws(() => spec.load(), (e: unknown) => {
      assert.ok(e instanceof VerifierError, String(e));
      assert.equal(e.code, 'EBMESH_VERIFIER');
      assert.match(e.message, /reject_me/);
      assert.match(e.log, /invalid mem access|R\d+ invalid/);
      return true;
    });
  } finally {
    spec.close();
  }
});
