/**
 * HTTP/1.x visibility over IPv6 (bpf/observe.bpf.c's cgroup_skb programs)
 * in the real kernel, segment by segment through BPF_PROG_TEST_RUN: an
 * exchange on an IPv6 connection is matched in the IPv6 pending map and
 * reported once, its event carrying the IPv6 addresses; IPv4 exchanges stay
 * in the IPv4 map. The per-socket parts (sockops, the Service VIP by
 * cookie) are covered with real sockets in test/integration/ipv6.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventType, HttpConn6Key, HttpMethods, HttpPending, type ValueOf } from '../../src/abi/structs.js';
import { TypedMap } from '../../src/kernel/index.js';
import { IPPROTO_TCP, NEXTHDR, type PacketSpec } from '../helpers/packet.js';
import { SkbWorld } from '../helpers/skb-world.js';

const CLIENT = 'fd00:77:3::10';
const SERVER = 'fd00:77:3::11';

let world: SkbWorld;
let pending6: TypedMap<ValueOf<typeof HttpConn6Key>, ValueOf<typeof HttpPending>>;
let clientCgroup: bigint;

before(() => {
  world = new SkbWorld('obsskb6', ['observe.bpf.o']);
  clientCgroup = world.enterCgroup('client');
  pending6 = new TypedMap(world.rawMap('ebm_http_pending6'), HttpConn6Key, HttpPending);
});

after(() => world?.cleanup());

const seg = (toServer: boolean, port: number, payload: string, extra: Partial<PacketSpec> = {}): PacketSpec => (toServer
  ? { src: CLIENT, dst: SERVER, proto: IPPROTO_TCP, sport: port, dport: 8080, payload, ...extra }
  : { src: SERVER, dst: CLIENT, proto: IPPROTO_TCP, sport: 8080, dport: port, payload, ...extra });

test('an IPv6 request and its response make one HTTP event with the IPv6 addresses, waiting in the IPv6 map in between', () => {
  world.events();
  assert.equal(world.run('ebm_http_egress', seg(true, 41000, 'GET /six HTTP/1.1\r\nHost: x\r\n\r\n')), 1);
  const waiting = pending6.get({ client_ip: CLIENT, server_ip: SERVER, client_port: 41000, server_port: 8080 });
  assert.ok(waiting, 'the request waits under the IPv6 connection');
  assert.equal(waiting.path.subarray(0, waiting.path_len).toString('latin1'), '/six');
  assert.equal(world.run('ebm_http_ingress', seg(true, 41000, 'GET /six HTTP/1.1\r\nHost: x\r\n\r\n')), 1, 'the server sees it too: still one');
  assert.equal(world.run('ebm_http_ingress', seg(false, 41000, 'HTTP/1.1 204 No Content\r\n\r\n')), 1);
  const events = world.events();
  assert.equal(events.length, 1, JSON.stringify(events.map((e) => e.type)));
  const e = events[0]!;
  assert.deepEqual(
    [e.type, HttpMethods[e.http_method], e.http_path.subarray(0, e.http_path_len).toString('latin1'), e.http_status, e.saddr, e.sport, e.daddr, e.dport, e.cgroup_id],
    [EventType.HTTP, 'GET', '/six', 204, CLIENT, 41000, SERVER, 8080, clientCgroup],
  );
  assert.equal(e.orig_daddr, '0.0.0.0', 'no Service dialled: no VIP');
  assert.equal(pending6.get({ client_ip: CLIENT, server_ip: SERVER, client_port: 41000, server_port: 8080 }), undefined, 'matched and removed');
});

test('a segment with an extension header before TCP is not parsed as HTTP (never misread)', () => {
  world.events();
  world.run('ebm_http_egress', seg(true, 41001, 'GET /ext HTTP/1.1\r\n\r\n', { extensions: [NEXTHDR.DEST] }));
  assert.equal(pending6.get({ client_ip: CLIENT, server_ip: SERVER, client_port: 41001, server_port: 8080 }), undefined);
  assert.deepEqual(world.events(), []);
});
