import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { parseSimpleResponse } from './h1-response.js';

interface Llhttp {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(b: Buffer): number | Error;
  close(): void;
  [k: number]: unknown;
}
const { HTTPParser } = createRequire(import.meta.url)('_http_common') as {
  HTTPParser: { new (): Llhttp; RESPONSE: number; kOnHeadersComplete: number; kOnBody: number; kOnMessageComplete: number };
};

/** What llhttp (Node's parser, the one the fast path stands in for) makes of the same bytes. */
function llhttp(bytes: Buffer): { status: number; raw: string[]; keepAlive: boolean; body: string; complete: boolean } | Error {
  const p = new HTTPParser();
  p.initialize(HTTPParser.RESPONSE, {}, 0, 0);
  const out = { status: 0, raw: [] as string[], keepAlive: false, body: '', complete: false };
  p[HTTPParser.kOnHeadersComplete] = (_a: number, _b: number, h: string[], _m: unknown, _u: unknown, status: number, _s: unknown, _up: boolean, ka: boolean) => {
    Object.assign(out, { status, raw: h, keepAlive: ka });
    return 0;
  };
  p[HTTPParser.kOnBody] = (b: Buffer) => void (out.body += b.toString('latin1'));
  p[HTTPParser.kOnMessageComplete] = () => void (out.complete = true);
  const r = p.execute(bytes);
  p.close();
  return r instanceof Error ? r : out;
}

const res = (s: string) => Buffer.from(s, 'latin1');

describe('parseSimpleResponse', () => {
  const accepted = [
    'HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n',
    'HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n',
    'HTTP/1.1 200 \r\nContent-Length: 2\r\nX-Empty:\r\nX-Pad: \t a b \t\r\n\r\nhi',
    'HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\nConnection: Keep-Alive, Close\r\n\r\nx',
    'HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx',
    'HTTP/1.0 200 OK\r\nContent-Length: 1\r\nconnection: keep-alive\r\n\r\nx',
    'HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n',
  ];
  it('reads a whole Content-Length response exactly as llhttp does', () => {
    for (const s of accepted) {
      const mine = parseSimpleResponse(res(s));
      const ref = llhttp(res(s));
      assert.ok(mine, s);
      assert.ok(!(ref instanceof Error) && ref.complete, s);
      assert.deepEqual({ status: mine.status, raw: mine.raw, keepAlive: mine.keepAlive, body: mine.body.toString('latin1') }, { status: ref.status, raw: ref.raw, keepAlive: ref.keepAlive, body: ref.body }, s);
    }
  });

  it('leaves everything else to llhttp', () => {
    const refused = [
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n', // chunked
      'HTTP/1.1 200 OK\r\nServer: x\r\n\r\nclose-delimited', // no Content-Length
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc', // body split over reads
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabHTTP/1.1 200 OK\r\n', // bytes after the body
      'HTTP/1.1 200 OK\r\nContent-Len', // head split over reads
      'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n', // head split before its empty line
      'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r', // head split inside its empty line
      'HTTP/1.1 200 OK\r\n\r\n', // no Content-Length at all
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx', // repeated framing
      'HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Fold: a\r\n b\r\n\r\nx', // obs-fold
      'HTTP/1.1 200 OK\r\nBad Name: 1\r\nContent-Length: 1\r\n\r\nx',
      'HTTP/1.1 200 OK\r\nX: a\x01b\r\nContent-Length: 1\r\n\r\nx',
      'HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 1\r\n\r\nx', // bare CR
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx',
      'HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n',
      'HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\nContent-Length: 0\n\n',
      'xHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
    ];
    for (const s of refused) assert.equal(parseSimpleResponse(res(s)), undefined, JSON.stringify(s));
  });
});

/** The lines a HeadBytes writes, as text. */
function lines(s: string): string {
  const r = parseSimpleResponse(res(s));
  assert.ok(r, s);
  const out = Buffer.alloc(r.size + 8, 0x2a);
  const end = r.writeLines(out, 4);
  assert.equal(end, 4 + r.size, 'writeLines writes exactly size bytes');
  assert.equal(out.toString('latin1', 0, 4) + out.toString('latin1', end), '********', 'and nothing around them');
  return out.toString('latin1', 4, end);
}

describe('SimpleResponse.writeLines (the head forwarded as bytes)', () => {
  it('writes the end-to-end lines as writeHead does: lower-case names, values without OWS, obs-text kept', () => {
    assert.equal(lines('HTTP/1.1 200 OK\r\nServer: nginx\r\nX-Pad: \t a b \t\r\nX-Empty:\r\nX-Obs: caf\xe9\r\nContent-Length: 2\r\n\r\nhi'), 'server: nginx\r\nx-pad: a b\r\nx-empty: \r\nx-obs: caf\xe9\r\ncontent-length: 2\r\n');
    const long = 'v'.repeat(300);
    assert.equal(lines(`HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: ${long}\r\nContent-Length: 0\r\n\r\n`), `set-cookie: a=1\r\nset-cookie: ${long}\r\ncontent-length: 0\r\n`);
  });

  it('leaves out hop-by-hop fields whatever their case', () => {
    const r = 'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKEEP-ALIVE: timeout=5\r\nProxy-Connection: x\r\nUpgrade: h2c\r\nTE: trailers\r\nTrailer: x\r\nHTTP2-Settings: y\r\nHost: z\r\nX-Ok: 1\r\nContent-Length: 0\r\n\r\n';
    assert.equal(lines(r), 'x-ok: 1\r\ncontent-length: 0\r\n');
    const s = parseSimpleResponse(res(r))!;
    assert.equal(s.keepAlive, true);
    assert.deepEqual(s.raw.filter((_, i) => i % 2 === 0), ['Connection', 'KEEP-ALIVE', 'Proxy-Connection', 'Upgrade', 'TE', 'Trailer', 'HTTP2-Settings', 'Host', 'X-Ok', 'Content-Length'], 'raw still has every field');
  });

  it('leaves out the fields Connection names, in any of its fields, before or after them', () => {
    const s = 'HTTP/1.1 200 OK\r\nX-Private: secret\r\nConnection: keep-alive, X-PRIVATE\r\nX-Kept: 1\r\nx-later: 2\r\nConnection: x-later\r\nDate: d\r\nContent-Length: 1\r\n\r\nx';
    assert.equal(lines(s), 'x-kept: 1\r\ndate: d\r\ncontent-length: 1\r\n');
    const r = parseSimpleResponse(res(s))!;
    assert.equal(r.hasDate, true);
    assert.equal(r.hasLength, true);
    // Connection naming a framing field: it goes, and the writer must then frame the body itself.
    const cl = parseSimpleResponse(res('HTTP/1.1 200 OK\r\nConnection: Content-Length, Date\r\nDate: d\r\nContent-Length: 1\r\n\r\nx'))!;
    assert.deepEqual([cl.hasLength, cl.hasDate, lines('HTTP/1.1 200 OK\r\nConnection: Content-Length, Date\r\nDate: d\r\nContent-Length: 1\r\n\r\nx')], [false, false, '']);
    // "close" is an option and the name of the reserved field Close.
    assert.equal(lines('HTTP/1.1 200 OK\r\nClose: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'), 'content-length: 0\r\n');
    assert.equal(parseSimpleResponse(res('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'))!.keepAlive, false);
  });

  it('refuses (to llhttp) every head with a byte that has no place in it', () => {
    for (const bad of ['\x00', '\x01', '\x08', '\x0b', '\x0c', '\x1f', '\x7f', '\n', '\r']) {
      const s = `HTTP/1.1 200 OK\r\nX-A: a${bad}b\r\nContent-Length: 0\r\n\r\n`;
      assert.equal(parseSimpleResponse(res(s)), undefined, JSON.stringify(s));
      assert.equal(parseSimpleResponse(res(`HTTP/1.1 200 O${bad}K\r\nContent-Length: 0\r\n\r\n`)), undefined, `reason with ${JSON.stringify(bad)}`);
    }
    for (const name of ['X A', 'X\tA', 'X"A', 'X(A', 'X/A', 'X@A', 'X\xe9A', '', ' X-A', '\tX-A', 'X-A ']) {
      const s = `HTTP/1.1 200 OK\r\n${name}: 1\r\nContent-Length: 0\r\n\r\n`;
      assert.equal(parseSimpleResponse(res(s)), undefined, JSON.stringify(s));
    }
    // Folded (obs-fold) continuation lines, with a space or a tab.
    for (const fold of [' b', '\tb']) assert.equal(parseSimpleResponse(res(`HTTP/1.1 200 OK\r\nX-A: a\r\n${fold}\r\nContent-Length: 0\r\n\r\n`)), undefined);
    // Content-Length that is not plain digits, or too long, or empty.
    for (const v of ['', '1a', '-1', '1 1', '0x1', '1'.repeat(16), '1,1']) assert.equal(parseSimpleResponse(res(`HTTP/1.1 200 OK\r\nContent-Length: ${v}\r\n\r\n`)), undefined, v);
  });

  it('takes HTTP/1.0 keep-alive only when Connection says so', () => {
    assert.equal(parseSimpleResponse(res('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n'))!.keepAlive, false);
    assert.equal(parseSimpleResponse(res('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n'))!.keepAlive, true);
    assert.equal(parseSimpleResponse(res('HTTP/1.0 200 OK\r\nConnection: x-a, keep-alive\r\nContent-Length: 0\r\n\r\n'))!.keepAlive, true);
    assert.equal(parseSimpleResponse(res('HTTP/1.0 200 OK\r\nConnection: , ,\r\nContent-Length: 0\r\n\r\n'))!.keepAlive, false);
  });
});
