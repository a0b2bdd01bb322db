/**
 * HTTP/1.x visibility (bpf/observe.bpf.c's cgroup_skb programs, parser in
 * bpf/include/ebmesh_http.h) in the real kernel, segment by segment through
 * BPF_PROG_TEST_RUN, the events read from the ring the way the agent reads
 * them.
 *
 * One connection is client CLIENT:port <-> server SERVER:8080. Each end has
 * two hooks: the client's egress sees requests and its ingress responses,
 * the server's ingress sees requests and its egress responses. Each test
 * run's socket is new (a new cookie), as two ends of a connection are two
 * sockets; what needs one socket seen twice (a new request replacing an
 * unanswered one at the same end) and the Service VIP of a request (keyed by
 * the socket's cookie) are left to test/integration/observe.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, EventType, EventFlag, HttpConnKey, HttpMethods, HttpPending, Verdict, type ValueOf } from '../../src/abi/structs.js';
import { TypedMap } from '../../src/kernel/index.js';
import { IPPROTO_TCP, IPPROTO_UDP, TCP, type PacketSpec } from '../helpers/packet.js';
import { SkbWorld, type FlowEventRecord } from '../helpers/skb-world.js';

const CLIENT = '10.77.3.10';
const SERVER = '10.77.3.11';
const SERVER_PORT = 8080;

let world: SkbWorld;
let pending: TypedMap<ValueOf<typeof HttpConnKey>, ValueOf<typeof HttpPending>>;
let clientCgroup: bigint;
let nextPort = 40000;

before(() => {
  world = new SkbWorld('obsskb', ['observe.bpf.o']);
  clientCgroup = world.enterCgroup('client');
  pending = new TypedMap(world.rawMap('ebm_http_pending'), HttpConnKey, HttpPending);
});

after(() => world?.cleanup());

/** A connection of its own per use, so that nothing one test leaves pending meets another. */
class Conn {
  readonly port = nextPort++;
  private seg(toServer: boolean, payload: Buffer | string, extra: Partial<PacketSpec>): PacketSpec {
    return toServer
      ? { src: CLIENT, dst: SERVER, proto: IPPROTO_TCP, sport: this.port, dport: SERVER_PORT, payload, ...extra }
      : { src: SERVER, dst: CLIENT, proto: IPPROTO_TCP, sport: SERVER_PORT, dport: this.port, payload, ...extra };
  }
  private hook(program: 'ebm_http_egress' | 'ebm_http_ingress', packet: PacketSpec): void {
    assert.equal(world.run(program, packet), 1, 'observe never drops');
  }
  /** The client writes (seen at its egress). */
  clientSends(payload: Buffer | string, extra: Partial<PacketSpec> = {}): void { this.hook('ebm_http_egress', this.seg(true, payload, extra)); }
  /** The client reads (its ingress). */
  clientGets(payload: Buffer | string): void { this.hook('ebm_http_ingress', this.seg(false, payload, {})); }
  /** The server reads (its ingress). */
  serverGets(payload: Buffer | string): void { this.hook('ebm_http_ingress', this.seg(true, payload, {})); }
  /** The server writes (its egress). */
  serverSends(payload: Buffer | string): void { this.hook('ebm_http_egress', this.seg(false, payload, {})); }
  get key() {
    return { client_ip: CLIENT, server_ip: SERVER, client_port: this.port, server_port: SERVER_PORT, pad: 0 };
  }
  /** The request waiting for its response, if any: method and path. */
  waiting(): { method: string; path: string } | undefined {
    const p = pending.get(this.key);
    return p && { method: HttpMethods[p.method] ?? `code ${p.method}`, path: p.path.subarray(0, p.path_len).toString('latin1') };
  }
}

const path = (e: FlowEventRecord) => e.http_path.subarray(0, e.http_path_len).toString('latin1');
const http = (e: FlowEventRecord) => ({ method: HttpMethods[e.http_method], path: path(e), status: e.http_status });

/** The HTTP events written while `fn` ran (and no event of another type). */
function reported(fn: () => void): FlowEventRecord[] {
  world.events();
  fn();
  const events = world.events();
  assert.deepEqual(events.filter((e) => e.type !== EventType.HTTP), [], 'only HTTP events');
  return events;
}

test('a request at the client and its response make one HTTP event: method, path, status, the connection and the client\'s cgroup', () => {
  const c = new Conn();
  const sent0 = world.counter(Counter.EVENTS_SENT);
  assert.deepEqual(reported(() => c.clientSends('GET /api/orders?id=7 HTTP/1.1\r\nHost: shop\r\nAccept: */*\r\n\r\n')), []);
  assert.deepEqual(c.waiting(), { method: 'GET', path: '/api/orders?id=7' });
  const [e, ...more] = reported(() => c.clientGets('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'));
  assert.deepEqual(more, []);
  assert.ok(e);
  assert.deepEqual(http(e), { method: 'GET', path: '/api/orders?id=7', status: 404 });
  assert.deepEqual(
    { verdict: e.verdict, proto: e.proto, flags: e.flags, saddr: e.saddr, sport: e.sport, daddr: e.daddr, dport: e.dport, cgroup: e.cgroup_id, vip: e.orig_daddr },
    { verdict: Verdict.FORWARDED, proto: IPPROTO_TCP, flags: 0, saddr: CLIENT, sport: c.port, daddr: SERVER, dport: SERVER_PORT, cgroup: clientCgroup, vip: '0.0.0.0' },
  );
  assert.ok(e.cookie > 0n && e.start_ns > 0n && e.duration_ns === e.ts_ns - e.start_ns, JSON.stringify({ cookie: `${e.cookie}`, start: `${e.start_ns}` }));
  assert.equal(c.waiting(), undefined, 'the exchange is closed');
  assert.equal(world.counter(Counter.EVENTS_SENT) - sent0, 1n);
});

test('an exchange seen first at the server is flagged so', () => {
  const c = new Conn();
  c.serverGets('POST /v1/pay HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}');
  const events = reported(() => c.serverSends('HTTP/1.1 201 Created\r\n\r\n'));
  assert.deepEqual(events.map(http), [{ method: 'POST', path: '/v1/pay', status: 201 }]);
  assert.equal(events[0]!.flags, EventFlag.SERVER);
});

test('both ends of a connection in the mesh: the exchange is reported once, as the first end saw it', () => {
  const c = new Conn();
  c.clientSends('PUT /items/9 HTTP/1.1\r\n\r\n');
  const cookie = pending.get(c.key)!.cookie;
  c.serverGets('PUT /items/9 HTTP/1.1\r\n\r\n'); // the server's socket: another cookie
  assert.equal(pending.get(c.key)!.cookie, cookie, 'the first end keeps the exchange');
  const events = reported(() => {
    c.serverSends('HTTP/1.1 204 No Content\r\n\r\n');
    c.clientGets('HTTP/1.1 204 No Content\r\n\r\n');
  });
  assert.deepEqual(events.map(http), [{ method: 'PUT', path: '/items/9', status: 204 }]);
  assert.equal(events[0]!.cookie, cookie);
  assert.equal(events[0]!.flags, 0, 'first seen at the client');
});

test('every HTTP/1.1 method is named', () => {
  const methods = HttpMethods.filter((m) => m !== 'OTHER');
  const got = methods.map((m) => {
    const c = new Conn();
    c.clientSends(`${m} /m HTTP/1.1\r\nHost: shop\r\n\r\n`);
    return reported(() => c.clientGets('HTTP/1.1 200 OK\r\n\r\n')).map(http);
  });
  assert.deepEqual(got, methods.map((m) => [{ method: m, path: '/m', status: 200 }]));
});

test('after TCP options (timestamps, as real stacks send), the payload is still found', () => {
  const c = new Conn();
  const timestamps = Buffer.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
  c.clientSends('DELETE /carts/3 HTTP/1.1\r\n\r\n', { tcpOptions: timestamps });
  assert.deepEqual(c.waiting(), { method: 'DELETE', path: '/carts/3' });
});

test('an oversized request line: the path is cut at 64 bytes', () => {
  const c = new Conn();
  const long = `/${'a'.repeat(40)}/${'b'.repeat(300)}`;
  c.clientSends(`GET ${long} HTTP/1.1\r\nHost: shop\r\n\r\n`);
  const events = reported(() => c.clientGets('HTTP/1.1 414 URI Too Long\r\n\r\n'));
  assert.deepEqual(events.map(http), [{ method: 'GET', path: long.slice(0, 64), status: 414 }]);
});

test('a request line split across segments: the path as far as the first segment carries it, nothing from earlier writes', () => {
  // A long request first, so the kernel's scratch buffer holds other bytes past the split.
  const before = new Conn();
  before.clientSends(`GET /${'z'.repeat(100)} HTTP/1.1\r\n\r\n`);
  const c = new Conn();
  c.clientSends('GET /api/orders/1234');
  assert.deepEqual(c.waiting(), { method: 'GET', path: '/api/orders/1234' });
  c.clientSends('5 HTTP/1.1\r\nHost: shop\r\n\r\n'); // the rest: neither a request nor a status line
  assert.deepEqual(c.waiting(), { method: 'GET', path: '/api/orders/1234' });
  const events = reported(() => c.clientGets('HTTP/1.1 200 OK\r\n\r\n'));
  assert.deepEqual(events.map(http), [{ method: 'GET', path: '/api/orders/1234', status: 200 }]);
});

test('a status line split before its code is not taken for a status: the request waits for a whole one', () => {
  const c = new Conn();
  c.clientSends('GET /slow HTTP/1.1\r\n\r\n');
  assert.deepEqual(reported(() => {
    c.clientGets('HTTP/1.1 2');
    c.clientGets('00 OK\r\nContent-Length: 0\r\n\r\n');
  }), []);
  assert.deepEqual(c.waiting(), { method: 'GET', path: '/slow' });
  assert.deepEqual(reported(() => c.clientGets('HTTP/1.1 200 OK\r\n\r\n')).map(http), [{ method: 'GET', path: '/slow', status: 200 }]);
});

test('malformed request lines open no exchange', () => {
  for (const line of [
    'get /lower HTTP/1.1\r\n\r\n', 'GET/nospace HTTP/1.1\r\n\r\n', 'GETS /x HTTP/1.1\r\n\r\n', 'POST\t/tab HTTP/1.1\r\n\r\n',
    'PATCH/x HTTP/1.1\r\n\r\n', 'DELETE/x HTTP/1.1\r\n\r\n', ' GET /leading-space HTTP/1.1\r\n', 'OPTION * HTTP/1.1\r\n\r\n',
  ]) {
    const c = new Conn();
    assert.deepEqual(reported(() => {
      c.clientSends(line);
      c.clientGets('HTTP/1.1 200 OK\r\n\r\n');
    }), [], JSON.stringify(line));
    assert.equal(c.waiting(), undefined, JSON.stringify(line));
  }
});

test('malformed status lines close nothing: the request still waits', () => {
  const c = new Conn();
  c.clientSends('GET /status HTTP/1.1\r\n\r\n');
  assert.deepEqual(reported(() => {
    for (const line of ['HTTP/1.1 20 OK\r\n\r\n', 'HTTP/2.0 200 OK\r\n\r\n', 'HTTP/1.1 2x0 OK\r\n\r\n', 'HTTX/1.1 200 OK\r\n\r\n', 'HTTP/1.1200 OK\r\n\r\n', 'http/1.1 200 OK\r\n\r\n']) {
      c.clientGets(line);
    }
  }), []);
  assert.deepEqual(c.waiting(), { method: 'GET', path: '/status' });
});

test('non-HTTP payloads (TLS, SSH, binary, too short, none, UDP) open and close nothing', () => {
  const clientHello = Buffer.from('160301010c0100010803030102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
  const c = new Conn();
  assert.deepEqual(reported(() => {
    c.clientSends(clientHello);
    c.clientSends('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n');
    c.clientSends(Buffer.from([0x00, 0x00, 0x12, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x64]));
    c.clientSends('GET / HTTP'); // 10 bytes: shorter than what the parser needs
    c.clientSends(Buffer.alloc(0), { tcpFlags: TCP.ACK });
    assert.equal(world.run('ebm_http_egress', { src: CLIENT, dst: SERVER, proto: IPPROTO_UDP, sport: c.port, dport: SERVER_PORT, payload: 'GET /udp HTTP/1.1\r\n\r\n' }), 1);
    c.clientGets('HTTP/1.1 200 OK\r\n\r\n');
  }), []);
  assert.equal(c.waiting(), undefined);
});

test('a response with no request seen reports nothing', () => {
  const c = new Conn();
  assert.deepEqual(reported(() => c.clientGets('HTTP/1.1 500 Internal Server Error\r\n\r\n')), []);
});
