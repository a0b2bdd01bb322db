/**
 * Replays every case of the http-desync-guardian corpus over a raw TCP
 * socket, through the proxy's own HTTP/1 parser (h1-request.ts). Every
 * "Severe" case must be answered 400 with the connection closed, and must
 * never reach the backend. Then framing on the wire: a chunked body that
 * goes wrong half-way never reaches the backend complete, pipelined
 * requests are split exactly where their framing says, HTTP/1.0 and
 * Expect: 100-continue behave.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { desyncRequest, loadDesyncCases } from './desync-corpus.js';
import { dial, startBackend, startProxy, svc, to, type Backend, type Started } from './harness.js';

function exchange(p: Started, bytes: Buffer, onText?: (text: string, s: ReturnType<typeof dial>) => void): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = dial(p, to('10.96.0.10', 80));
    let text = '';
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.destroy();
      resolve({ text, closed });
    };
    s.on('connect', () => s.write(bytes));
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      onText?.(text, s);
    });
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    const t = setTimeout(() => finish(false), 1500);
  });
}

describe('HTTP/1 desync corpus (http-desync-guardian)', () => {
  let backend: Backend, p: Started;
  const cases = loadDesyncCases();
  before(async () => {
    backend = await startBackend('web');
    p = await startProxy({ services: [svc('web', '10.96.0.10', 80, [backend])] });
  });
  after(async () => {
    await p.proxy.close();
    await backend.close();
  });

  const severe = cases.filter((c) => c.expected.tier === 'Severe');
  it('has Severe cases to replay', () => assert.ok(severe.length >= 50, `found ${severe.length}`));

  for (const c of severe) {
    it(`Severe ${c.file}: ${c.name} (${c.expected.reason}) -> 400 and close`, async () => {
      const before = backend.hits + backend.partial;
      const r = await exchange(p, desyncRequest(c));
      assert.match(r.text, /^HTTP\/1\.1 400 /, `answer was ${JSON.stringify(r.text.slice(0, 80))}`);
      assert.ok(r.closed, 'connection closed after the 400');
      await new Promise((res) => setTimeout(res, 30)); // a late forward would show up here
      assert.equal(backend.hits + backend.partial, before, 'never forwarded, not even in part');
    });
  }

  it('still forwards plain compliant requests', async () => {
    const r = await exchange(p, Buffer.from('GET /ok HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n'));
    assert.match(r.text, /^HTTP\/1\.1 200 /);
  });

  it('a chunked body that breaks its framing half-way is never delivered complete', async () => {
    const hits = backend.hits;
    const r = await exchange(p, Buffer.from('POST /half HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n0\r\n\r\n'));
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    assert.ok(r.closed);
    await new Promise((res) => setTimeout(res, 30));
    assert.equal(backend.hits, hits, 'the backend never saw the request end');
  });

  it('splits pipelined requests exactly where Content-Length and chunked framing say (HEAD included), and answers in order', async () => {
    const n = backend.seen.length;
    const r = await exchange(
      p,
      Buffer.from(
        'POST /one HTTP/1.1\r\nHost: web\r\nContent-Length: 15\r\n\r\nGET /x HTTP/1.1' +
          'POST /two HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' +
          'HEAD /head HTTP/1.1\r\nHost: web\r\n\r\n' +
          'GET /three HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n',
      ),
    );
    assert.ok(r.closed, 'closed after the request that asked for it');
    assert.equal(r.text.match(/HTTP\/1\.1 200 /g)?.length, 4, r.text);
    const seen = backend.seen.slice(n).map((x) => [x.url, x.body]);
    assert.deepEqual(seen, [['/one', 'GET /x HTTP/1.1'], ['/two', 'abc'], ['/head', ''], ['/three', '']]);
    // The HEAD answer has the length of the body it does not carry; the next answer follows its head directly.
    assert.match(r.text, /content-length: \d+\r\n(?:[^\r]*\r\n)*\r\nHTTP\/1\.1 200 OK\r\n(?:[^\r]*\r\n)*\r\n\{"backend":"web","method":"GET","url":"\/three"/);
    assert.ok(r.text.indexOf('"/one"') < r.text.indexOf('"/two"') && r.text.indexOf('"/two"') < r.text.indexOf('"/three"'), 'answers in request order');
  });

  it('forwards end-to-end headers as sent and drops hop-by-hop ones, including those Connection names', async () => {
    const send = async (conn: string) => {
      const r = await exchange(
        p,
        Buffer.from(`GET /hop HTTP/1.1\r\nHost: web\r\nX-Keep:  kept value \r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nTE: trailers\r\nX-Secret: s\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nConnection: ${conn}\r\n\r\n`),
      );
      return JSON.parse(r.text.slice(r.text.indexOf('{'))).headers as Record<string, string>;
    };
    for (const conn of ['close', 'close, X-Secret']) {
      const h = await send(conn);
      assert.equal(h['x-keep'], 'kept value');
      assert.equal(h['te'], 'trailers');
      assert.equal(h['host'], 'web');
      for (const gone of ['keep-alive', 'proxy-connection', 'connection']) assert.equal(h[gone], undefined, `${gone} with Connection: ${conn}`);
      assert.equal(h['x-secret'], conn === 'close' ? 's' : undefined);
      assert.match(h['traceparent']!, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/, 'same trace, our span');
      assert.doesNotMatch(h['traceparent']!, /00f067aa0ba902b7/);
    }
  });

  it('answers an HTTP/1.0 request and closes; sends 100 Continue when asked', async () => {
    const ten = await exchange(p, Buffer.from('GET /ten HTTP/1.0\r\n\r\n'));
    assert.match(ten.text, /^HTTP\/1\.1 200 /);
    assert.match(ten.text, /\r\nconnection: close\r\n/i);
    assert.ok(ten.closed);
    let sent = false;
    const cont = await exchange(p, Buffer.from('POST /cont HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n'), (text, s) => {
      if (!sent && text.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
        sent = true;
        s.write('hello');
      }
    });
    assert.ok(sent, cont.text);
    assert.equal(JSON.parse(cont.text.slice(cont.text.indexOf('{'))).body, 'hello');
  });
});

describe('HTTP/1 response heads copied from the upstream', () => {
  let backend: Backend, p: Started;
  before(async () => {
    backend = await startBackend('web', (_req, res) => {
      res.writeHead(200, ['X-Kept', ' v ', 'Connection', 'keep-alive, X-Private', 'X-Private', 'secret', 'Keep-Alive', 'timeout=5', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Length', '2']);
      res.end('ok');
    });
    p = await startProxy({ services: [svc('web', '10.96.0.10', 80, [backend])] });
  });
  after(async () => {
    await p.proxy.close();
    await backend.close();
  });

  it('keeps end-to-end fields (repeated ones too) and drops hop-by-hop ones and those the upstream Connection names', async () => {
    const r = await exchange(p, Buffer.from('GET /raw HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n'));
    const head = r.text.slice(0, r.text.indexOf('\r\n\r\n') + 2);
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head, /\r\nx-kept: v\r\n/);
    assert.deepEqual(head.match(/\r\nset-cookie: [^\r]*/g), ['\r\nset-cookie: a=1', '\r\nset-cookie: b=2']);
    assert.match(head, /\r\ncontent-length: 2\r\n/);
    assert.doesNotMatch(head, /x-private|keep-alive/i);
    // The connection header is the proxy's own, for the client's connection.
    assert.deepEqual(head.match(/\r\nconnection: [^\r]*/gi), ['\r\nconnection: close']);
    assert.ok(r.text.endsWith('\r\n\r\nok'));
  });
});
