/**
 * The proxy's own HTTP/1.1 upstream client (src/proxy/h1-client.ts) against
 * a raw TCP backend whose bytes we choose: response framings Node's client
 * handled for us before (HEAD, 1xx, close-delimited, trailers, repeated
 * headers) and connection reuse.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import http2 from 'node:http2';
import { Duplex } from 'node:stream';
import { UpstreamPool } from '../../src/proxy/upstream.js';
import type { Caller, Dial } from '../../src/proxy/dial.js';

interface Raw { port: number; conns: number; close(): Promise<void> }

/** Answers each request head (requests here carry no body) with `answer(head)`. */
async function rawBackend(answer: (head: string) => string | { bytes: string; close: true }): Promise<Raw> {
  const sockets = new Set<net.Socket>();
  const b: Raw = { port: 0, conns: 0, close: async () => {} };
  const server = net.createServer((s) => {
    b.conns++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, i);
        buf = buf.slice(i + 4);
        const a = answer(head);
        if (typeof a === 'string') s.write(a);
        else s.end(a.bytes);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.port = (server.address() as net.AddressInfo).port;
  b.close = () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); });
  return b;
}

const ALICE = { identity: 'spiffe://t/ns/a/sa/alice', namespace: 'a' };
async function fetchVia(pool: UpstreamPool, port: number, method = 'GET', path = '/', caller = ALICE) {
  const resp = await pool.request({ endpoint: { ip: '127.0.0.1', port }, caller, protocol: 'http1', method, path, authority: 'web', headers: {}, body: undefined, timeoutMs: 5000, connectTimeoutMs: 1000 });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    resp.body.on('error', reject);
    resp.body.on('data', (c) => chunks.push(c));
    resp.body.once('end', resolve);
  });
  return { status: resp.status, headers: resp.headers, body: Buffer.concat(chunks).toString(), trailers: await resp.trailers };
}

describe('upstream HTTP/1.1 client', () => {
  let pool: UpstreamPool;
  before(() => (pool = new UpstreamPool()));
  after(() => pool.close());

  it('reuses a keep-alive connection and reads repeated headers as Node does', async () => {
    const b = await rawBackend(() => 'HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nVary: x\r\nVary: y\r\nContent-Length: 2\r\n\r\nok');
    try {
      for (let i = 0; i < 3; i++) {
        const r = await fetchVia(pool, b.port);
        assert.equal(r.body, 'ok');
        assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
        assert.equal(r.headers['vary'], 'x, y');
      }
      assert.equal(b.conns, 1);
    } finally {
      await b.close();
    }
  });

  it('skips the body of a HEAD answer, ignores 1xx, reads trailers and close-delimited bodies', async () => {
    const b = await rawBackend((head) => {
      if (head.startsWith('HEAD')) return 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n';
      if (head.includes('/early')) return 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate';
      if (head.includes('/trailers')) return 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n';
      return { bytes: 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end', close: true };
    });
    try {
      const h = await fetchVia(pool, b.port, 'HEAD');
      assert.equal(h.headers['content-length'], '5');
      assert.equal(h.body, '');
      assert.equal((await fetchVia(pool, b.port, 'GET', '/early')).body, 'late');
      const t = await fetchVia(pool, b.port, 'GET', '/trailers');
      assert.equal(t.body, 'abc');
      assert.deepEqual(t.trailers, { 'x-sum': '42' });
      assert.equal((await fetchVia(pool, b.port, 'GET', '/close')).body, 'until the end');
      assert.equal((await fetchVia(pool, b.port, 'GET', '/early')).body, 'late', 'a fresh connection after the close');
    } finally {
      await b.close();
    }
  });

  it('reads the next answer on a connection whose answer ended while its reader was paused', async () => {
    // The head first, then the body's one chunk and its end in one write:
    // the reader pauses on that chunk, and the answer completes in the same
    // read, so the connection goes back to the pool while paused.
    const server = net.createServer((s) => {
      s.on('data', () => {
        s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
        setTimeout(() => s.write('5\r\nfirst\r\n0\r\n\r\n'), 50);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const own = new UpstreamPool();
    try {
      for (let i = 0; i < 2; i++) {
        const resp = await own.request({ endpoint: { ip: '127.0.0.1', port }, caller: ALICE, protocol: 'http1', method: 'GET', path: '/', authority: 'web', headers: {}, body: undefined, timeoutMs: 2000, connectTimeoutMs: 1000 });
        const got = await new Promise<string>((resolve, reject) => {
          let text = '';
          resp.body.on('error', reject);
          resp.body.on('data', (c) => {
            text += c.toString();
            resp.body.pause();
            setTimeout(() => resp.body.resume(), 20);
          });
          resp.body.once('end', () => resolve(text));
        });
        assert.equal(got, 'first', `answer ${i + 1}`);
      }
    } finally {
      own.close();
      server.close();
    }
  });

  it('refuses to write a header value with CR/LF', async () => {
    await assert.rejects(pool.request({ endpoint: { ip: '127.0.0.1', port: 9 }, caller: ALICE, protocol: 'http1', method: 'GET', path: '/', authority: 'web', headers: { 'x-a': 'b\r\nx-evil: 1' }, body: undefined, timeoutMs: 1000, connectTimeoutMs: 1000 }), /invalid character/);
  });

  it('reports a refused connection as a connect error, safe to retry', async () => {
    const b = await rawBackend(() => '');
    const port = b.port;
    await b.close();
    await assert.rejects(fetchVia(pool, port), (e: { kind?: string; safeToRetry?: boolean }) => e.kind === 'connect' && e.safeToRetry === true);
  });
});

/**
 * A stream that is not a socket, as the tunnel's CONNECT streams are: bytes go
 * to a real TCP connection, and 'connect' is emitted only when it connected
 * (the dial contract in src/proxy/dial.ts).
 */
function relayDial(log: Array<{ port: number; caller: string }>, speaksForCaller = true): Dial {
  const dial: Dial = (ep, caller: Caller) => {
    log.push({ port: ep.port, caller: caller.identity });
    const sock = net.connect({ host: ep.ip, port: ep.port });
    const d: Duplex = new Duplex({
      write: (c, _e, cb) => { sock.write(c, cb); },
      final: (cb) => { sock.end(); cb(); },
      read: () => { sock.resume(); },
      destroy: (e, cb) => { sock.destroy(); cb(e); },
    });
    sock.on('data', (c) => { if (!d.push(c)) sock.pause(); });
    sock.on('end', () => d.push(null));
    sock.on('error', (e) => d.destroy(e));
    sock.once('connect', () => d.emit('connect'));
    return d;
  };
  return Object.assign(dial, { speaksForCaller: () => speaksForCaller });
}

describe('upstream dial', () => {
  const BOB = { identity: 'spiffe://t/ns/b/sa/bob', namespace: 'b' };

  it('opens HTTP/1.1 connections with the dial, pooled per caller: one caller reuses, another gets its own', async () => {
    const log: Array<{ port: number; caller: string }> = [];
    const pool = new UpstreamPool(relayDial(log));
    const b = await rawBackend(() => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    try {
      for (const c of [ALICE, ALICE, BOB, ALICE, BOB]) assert.equal((await fetchVia(pool, b.port, 'GET', '/', c)).body, 'ok');
      assert.deepEqual(log, [{ port: b.port, caller: ALICE.identity }, { port: b.port, caller: BOB.identity }]);
      assert.equal(b.conns, 2);
    } finally {
      pool.close();
      await b.close();
    }
  });

  it('shares connections between callers when the dial does not speak for them (plain TCP)', async () => {
    const log: Array<{ port: number; caller: string }> = [];
    const pool = new UpstreamPool(relayDial(log, false));
    const b = await rawBackend(() => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    try {
      for (const c of [ALICE, BOB, ALICE, BOB]) assert.equal((await fetchVia(pool, b.port, 'GET', '/', c)).body, 'ok');
      assert.deepEqual(log, [{ port: b.port, caller: ALICE.identity }]);
      assert.equal(b.conns, 1);
    } finally {
      pool.close();
      await b.close();
    }
  });

  it('runs HTTP/2 sessions over the dialled stream, one per caller', async () => {
    const log: Array<{ port: number; caller: string }> = [];
    const pool = new UpstreamPool(relayDial(log));
    const server = http2.createServer((req, res) => res.end(`h2 ${req.url}`));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const get = async (caller: Caller, path: string) => {
      const resp = await pool.request({ endpoint: { ip: '127.0.0.1', port }, caller, protocol: 'http2', method: 'GET', path, authority: 'web', headers: {}, body: undefined, timeoutMs: 5000, connectTimeoutMs: 1000 });
      const chunks: Buffer[] = [];
      await new Promise<void>((resolve, reject) => {
        resp.body.on('error', reject);
        resp.body.on('data', (c) => chunks.push(c));
        resp.body.once('end', resolve);
      });
      return `${resp.status} ${Buffer.concat(chunks).toString()}`;
    };
    try {
      assert.equal(await get(ALICE, '/a'), '200 h2 /a');
      assert.equal(await get(ALICE, '/b'), '200 h2 /b');
      assert.equal(await get(BOB, '/c'), '200 h2 /c');
      assert.deepEqual(log.map((l) => l.caller), [ALICE.identity, BOB.identity]);
    } finally {
      pool.close();
      await new Promise((r) => server.close(r));
    }
  });

  it('a dialled stream that fails before connect is a connect error, safe to retry', async () => {
    const pool = new UpstreamPool((ep) => {
      const d = new Duplex({ write: (_c, _e, cb) => cb(), read: () => undefined });
      process.nextTick(() => d.destroy(Object.assign(new Error(`refused ${ep.port}`), { code: 'EMTLSNOPEER' })));
      return d;
    });
    try {
      await assert.rejects(fetchVia(pool, 9), (e: { kind?: string; safeToRetry?: boolean }) => e.kind === 'connect' && e.safeToRetry === true);
    } finally {
      pool.close();
    }
  });
});
