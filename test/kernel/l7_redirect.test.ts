/**
 * Steering to the node proxy in the real kernel: connect4 sends an L7
 * frontend to the proxy address and keeps getpeername() on the VIP; the
 * sockops program publishes {VIP, port, cgroup} under the client's
 * (ip, port), where a process that only has the pin (the proxy) finds it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObjectSpec, attachCgroupPinned, detachPinned, type LoadedObject } from '../../src/kernel/index.js';
import { PinnedMap } from '../../src/relay/index.js';
import { BPF_BUILD } from '../../src/paths.js';
import { LbMaps } from '../../src/agent/lb-maps.js';
import { planLb } from '../../src/agent/lb-plan.js';
import { Counter, L7ConnKey, L7Orig, L7Proxy, U32Key, U64Value } from '../../src/abi/structs.js';
import { Sandbox, backendServerCode, sleep } from '../helpers/sandbox.js';
import { PolicyMaps } from '../../src/policy/policy-maps.js';
import { cgroupId } from '../../src/host/cgroup.js';
import { encodeEndpoint } from '../../src/policy/policy-plan.js';

const VIP = '10.251.1.1';
const B1 = '10.250.3.2';
const PROXY = '10.250.3.100';
let sb: Sandbox;
let objs: LoadedObject[] = [];
let lb: LbMaps;

const counter = (c: number) => objs[0]!.map('ebm_counters', U32Key, U64Value).sumPerCpu(c);

before(async () => {
  sb = new Sandbox('l7redir');
  sb.ip('addr', 'add', `${B1}/32`, 'dev', 'lo');
  sb.ip('addr', 'add', `${PROXY}/32`, 'dev', 'lo');
  sb.ip('route', 'add', 'unreachable', '10.251.1.0/24');
  // The backend answers its own address; the "proxy" answers "proxy <peer ip>:<peer port>".
  sb.background(['python3', '-c', backendServerCode([[B1, 8080]])]);
  sb.background(['python3', '-c', `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("${PROXY}", 15001)); s.listen(64)
while True:
    c, a = s.accept(); c.sendall(f"proxy {a[0]}:{a[1]}".encode()); c.close()
`]);
  for (const file of ['sock_lb.bpf.o', 'l7_sockops.bpf.o']) {
    const spec = BpfObjectSpec.open(join(BPF_BUILD, file));
    objs.push(spec.load({ pinDir: sb.pinDir }));
    spec.close();
  }
  for (const o of objs) for (const p of o.programs()) attachCgroupPinned(p.fd, sb.cgroup, p.attachType, join(sb.pinDir, 'links', p.name));
  // The caller is a workload of the mesh: policy refuses sockets of cgroups without an identity.
  new PolicyMaps(objs[0]!).apply([{ map: 'endpoints', op: 'put', ...encodeEndpoint({ cgroupId: cgroupId(sb.cgroup)!, identity: 256 }) }]);
  lb = new LbMaps(objs[0]!);
  lb.apply(planLb(lb.read(), [
    { service: 't/web', vip: VIP, port: 80, proto: 'TCP', l7: true, backends: [{ ip: B1, port: 8080, workload: 'b1' }] },
    { service: 't/plain', vip: VIP, port: 81, proto: 'TCP', backends: [{ ip: B1, port: 8080, workload: 'b1' }] },
  ]));
  await sleep(300);
});

after(() => {
  for (const o of objs) for (const p of o.programs()) detachPinned(join(sb.pinDir, 'links', p.name));
  for (const o of objs) o.close();
  objs = [];
  sb?.cleanup();
});

const dial = (port: number) => sb.python(`
import socket
s = socket.create_connection(("${VIP}", ${port}), timeout=3)
print(s.recv(64).decode(), s.getpeername()[0], s.getpeername()[1], s.getsockname()[0], s.getsockname()[1])`);

test('with no proxy address, an L7 frontend is balanced as plain L4 (and counted)', () => {
  const before = counter(Counter.L7_NO_PROXY);
  const [answer] = dial(80).split(' ');
  assert.equal(answer, `${B1}:8080`);
  assert.equal(counter(Counter.L7_NO_PROXY), before + 1n);
});

test('an L7 frontend goes to the proxy; the client still sees the VIP; the proxy finds VIP and cgroup by the peer address', () => {
  objs[0]!.map('ebm_l7_proxy', U32Key, L7Proxy).set(0, { ip: PROXY, port: 15001, pad: 0, ip6: '::' });
  const [, proxyView, peerIp, peerPort, myIp, myPort] = dial(80).split(' ');
  assert.equal(`${peerIp}:${peerPort}`, `${VIP}:80`, 'getpeername shows the VIP');
  assert.equal(proxyView, `${myIp}:${myPort}`, 'the proxy accepted this client');
  // Read as the proxy's workers read it: through the relay, which takes the entry (a worker loads no libbpf).
  const conns = new PinnedMap(join(sb.pinDir, 'ebm_l7_conns'), L7ConnKey, L7Orig);
  try {
    const key = { ip: myIp!, port: Number(myPort), pad: 0 };
    const orig = conns.take(key);
    assert.ok(orig, 'published under the client (ip, port)');
    assert.equal(orig.vip, VIP);
    assert.equal(orig.port, 80);
    assert.equal(orig.cgroup_id, statSync(sb.cgroup, { bigint: true }).ino, 'the caller is its cgroup');
    assert.equal(conns.take(key), undefined, 'taken once: the entry is gone');
  } finally {
    conns.close();
  }
  // A mirror whose layout differs from the kernel's is refused at open, naming the map.
  assert.throws(() => new PinnedMap(join(sb.pinDir, 'ebm_l7_conns'), L7ConnKey, U64Value), /ebm_l7_conns layout check/);
  assert.ok(counter(Counter.L7_REDIRECTED) >= 1n);
  assert.ok(counter(Counter.L7_ESTABLISHED) >= 1n);
});

test('a frontend without the flag is never steered', () => {
  const [answer, peerIp, peerPort] = dial(81).split(' ');
  assert.equal(answer, `${B1}:8080`);
  assert.equal(`${peerIp}:${peerPort}`, `${VIP}:81`);
});
