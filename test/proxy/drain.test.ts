/**
 * drain(): what a replaced node proxy generation does with the connections
 * it carries (the handover itself is in test/integration/proxy-mesh.test.ts).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { dial, h2Request, h2Session, request, startBackend, startH2Backend, startProxy, svc, to, type Backend, type Started } from './harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('drain: the old generation of a handover', () => {
  let h1: Backend, h2: Backend, p: Started, tcpEcho: net.Server;
  before(async () => {
    h1 = await startBackend('h1');
    h2 = await startH2Backend('h2');
    tcpEcho = net.createServer((s) => { s.on('error', () => {}); s.pipe(s); });
    await new Promise<void>((r) => tcpEcho.listen(0, '127.0.0.1', r));
    p = await startProxy({
      services: [
        svc('h1', '10.96.6.1', 80, [h1], { protocol: 'http1' }),
        svc('h2', '10.96.6.2', 80, [h2], { protocol: 'http2' }),
        { name: 'echo', namespace: 'default', vip: '10.96.6.3', port: 7, protocol: 'tcp', endpoints: [{ ip: '127.0.0.1', port: (tcpEcho.address() as net.AddressInfo).port }] },
      ],
    });
  });
  after(async () => {
    await p.proxy.close();
    await h1.close();
    await h2.close();
    tcpEcho.close();
  });

  it('answers the next request of a keep-alive connection with connection: close, closes an idle keep-alive connection, GOAWAYs HTTP/2, keeps a TCP stream until it ends, and stops accepting', async () => {
    // A keep-alive connection that will be busy when the drain starts, and one that stays idle.
    const keepAlive = () => {
      const a = new http.Agent({ keepAlive: true, maxSockets: 1 });
      // Through the proxy, attributed as the kernel would.
      // http.Agent's createConnection is Node's own hook, absent from its typings.
      (a as unknown as { createConnection: unknown }).createConnection = () => dial(p, to('10.96.6.1', 80));
      return a;
    };
    const busyAgent = keepAlive();
    const idleAgent = keepAlive();
    assert.equal((await request(p, to('10.96.6.1', 80), { agent: busyAgent })).status, 200);
    assert.equal((await request(p, to('10.96.6.1', 80), { agent: idleAgent })).status, 200);
    const idleSocket = Object.values(idleAgent.freeSockets)[0]![0]!;
    const idleClosed = new Promise<void>((r) => idleSocket.once('close', () => r()));

    const session = h2Session(p, to('10.96.6.2', 80));
    assert.equal((await h2Request(session, { ':path': '/' })).status, 200);
    const goaway = new Promise<void>((r) => session.once('goaway', () => r()));

    const tcp = dial(p, to('10.96.6.3', 7));
    let echoed = '';
    const got = () => echoed;
    tcp.on('data', (d) => (echoed += d));
    tcp.write('before');
    for (let i = 0; i < 100 && echoed !== 'before'; i++) await sleep(10);
    assert.equal(echoed, 'before');

    // Sent as the drain starts, on a connection kept alive.
    const inFlight = request(p, to('10.96.6.1', 80), { agent: busyAgent, path: '/x' });
    const drained = p.proxy.drain();
    let done = false;
    void drained.then(() => (done = true));
    const r = await inFlight;
    assert.equal(r.status, 200);
    assert.equal(r.headers.connection, 'close', 'the answer closes its connection');
    await goaway;
    await idleClosed;

    // Long-lived streams stay: the drain waits for them.
    tcp.write('-after');
    for (let i = 0; i < 100 && got() !== 'before-after'; i++) await sleep(10);
    assert.equal(got(), 'before-after', 'a TCP pass-through stream is carried on while draining');
    assert.equal(done, false, 'the drain is not over while a connection is open');
    assert.ok(p.proxy.open >= 1);

    // No new connection is accepted.
    const refused = await new Promise<string>((res) => {
      const s = net.connect({ host: '127.0.0.1', port: p.port });
      s.once('connect', () => { s.destroy(); res('accepted'); });
      s.once('error', (e: NodeJS.ErrnoException) => res(e.code ?? 'error'));
    });
    assert.equal(refused, 'ECONNREFUSED');

    session.close();
    tcp.end();
    await drained;
    assert.equal(p.proxy.open, 0);
    busyAgent.destroy();
    idleAgent.destroy();
  });
});
