/**
 * The one HTTP/1 response reader (h1-response.ts), without sockets: every
 * framing, fed whole and cut at every byte, read exactly as Node's llhttp
 * reads it (llhttp is the reference here, never a path of the proxy); the
 * answers llhttp refuses refused too; the few it accepts and we refuse on
 * purpose named; the head forwarded as bytes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FramingError } from '../../src/proxy/h1-body.js';
import { MAX_HEAD_BYTES } from '../../src/proxy/http1-guard.js';
import { parseResponseHead, ResponseReader, type ResponseHead } from '../../src/proxy/h1-response.js';
import { llhttp, ours, without } from './response-reference.js';

const res = (s: string) => Buffer.from(s, 'latin1');
const head = (s: string): ResponseHead => {
  const r = parseResponseHead(res(s), 0, false);
  assert.ok(r && 'head' in r, `${JSON.stringify(s)}: ${JSON.stringify(r)}`);
  return r.head;
};
const refused = (s: string): boolean => {
  const r = parseResponseHead(res(s), 0, false);
  return r !== undefined && 'problem' in r;
};

describe('ResponseReader against llhttp', () => {
  const accepted: [string, boolean?][] = [
    ['HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n'],
    ['HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n'],
    ['HTTP/1.1 200 \r\nContent-Length: 2\r\nX-Empty:\r\nX-Pad: \t a b \t\r\n\r\nhi'],
    ['HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nhi'],
    ['HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\nConnection: Keep-Alive, Close\r\n\r\nx'],
    ['HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx'],
    ['HTTP/1.0 200 OK\r\nContent-Length: 1\r\nconnection: keep-alive\r\n\r\nx'],
    ['HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Obs: caf\xe9\r\nContent-Length: 0\r\n\r\n'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nTrailer: x-sum\r\n\r\n3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Sum: 42\r\nX-B:  two \r\n\r\n'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nto the close'],
    ['HTTP/1.1 200 OK\r\n\r\nto the close'],
    ['HTTP/1.0 200 OK\r\nServer: old\r\n\r\nto the close'],
    ['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'],
    ['HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n'],
    ['HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', true],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', true],
    ['\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'],
    // Only spaces and tabs are whitespace around a value: an NBSP (0xA0) makes "chunked" and "close" other words (found by the fuzz target).
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: \xa0chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['HTTP/1.1 200 OK\r\nConnection: \xa0close\r\nContent-Length: 1\r\n\r\nx'],
  ];

  it('reads every framing as llhttp does, whole and cut at every byte', () => {
    for (const [s, isHead] of accepted) {
      const bytes = res(s);
      const ref = llhttp(bytes, isHead);
      assert.ok(!(ref instanceof Error), `llhttp refused ${JSON.stringify(s)}`);
      for (let cut = 0; cut < bytes.length; cut++) {
        const mine = ours(bytes, cut ? [cut] : [], isHead);
        assert.ok(!(mine instanceof FramingError), `${JSON.stringify(s)} cut at ${cut}: ${String(mine)}`);
        assert.deepEqual(without(mine), ref, `${JSON.stringify(s)} cut at ${cut}`);
      }
      const bytewise = ours(bytes, [...bytes.keys()].slice(1), isHead);
      assert.ok(!(bytewise instanceof FramingError));
      assert.deepEqual(without(bytewise), ref, `${JSON.stringify(s)} byte by byte`);
    }
  });

  const refusedByBoth = [
    'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx',
    'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx',
    'HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx',
    'HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx',
    'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\nx',
    'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Fold: a\r\n b\r\n\r\nx',
    'HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nx',
    'HTTP/1.1 200 OK\r\nBad Name: 1\r\nContent-Length: 1\r\n\r\nx',
    'HTTP/1.1 200 OK\r\n: v\r\nContent-Length: 1\r\n\r\nx',
    'HTTP/1.1 200 OK\r\nX: a\x01b\r\nContent-Length: 1\r\n\r\nx',
    'HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 1\r\n\r\nx',
    'HTTP/1.1 200 OK\nContent-Length: 1\n\nx',
    'HTTP/1.1 200 OK\r\nContent-Length: 1\n\r\nx',
    'HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n',
    'HTTP/1.1 99 OK\r\nContent-Length: 0\r\n\r\n',
    'HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n',
    'xHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\n0\n\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a b\r\nx\r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;\xe9\r\nx\r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc', // closed before the body's end
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n', // closed before the last chunk
    'HTTP/1.1 200 OK\r\nContent-Le', // closed inside the head
  ];

  it('refuses what llhttp refuses, however the bytes are cut', () => {
    for (const s of refusedByBoth) {
      const bytes = res(s);
      assert.ok(llhttp(bytes) instanceof Error, `llhttp accepts ${JSON.stringify(s)}`);
      for (let cut = 0; cut < bytes.length; cut++) assert.ok(ours(bytes, cut ? [cut] : []) instanceof FramingError, `${JSON.stringify(s)} cut at ${cut}`);
    }
  });

  it('refuses on purpose the few answers llhttp lets through', () => {
    // No version but 1.0 and 1.1 on an HTTP/1 connection; status codes only in RFC 9110's range; no control characters in the reason.
    for (const s of ['HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n', 'HTTP/1.1 600 OK\r\nContent-Length: 0\r\n\r\n', 'HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n']) {
      assert.ok(!(llhttp(res(s)) instanceof Error), s);
      assert.ok(ours(res(s)) instanceof FramingError, s);
    }
    // A tab beside a Transfer-Encoding coding: llhttp reads "chunked<TAB>" to the close, RFC 9110 as chunked; we take neither side (found by the h1-response fuzz target).
    for (const te of ['chunked\t', '\tchunked', 'gzip,\tchunked']) {
      const r = ours(res(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n`));
      assert.ok(r instanceof FramingError && r.problem.reason === 'BadTransferEncoding', `${JSON.stringify(te)}: ${String(r)}`);
    }
  });

  it('refuses a head longer than the limit instead of holding it', () => {
    const big = res(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(MAX_HEAD_BYTES)}\r\n`);
    const r = ours(big, [100, 8000]);
    assert.ok(r instanceof FramingError && r.problem.reason === 'HeadTooLarge', String(r));
  });
});

describe('ResponseReader, per connection', () => {
  it('hands a Content-Length body that came with its head over whole, as a sub-array of that read', () => {
    const bytes = res('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi');
    const one = ours(bytes);
    assert.ok(!(one instanceof FramingError) && one.whole && one.body === 'hi');
    const split = ours(bytes, [bytes.length - 1]);
    assert.ok(!(split instanceof FramingError) && !split.whole && split.body === 'hi');
    let whole: Buffer | undefined;
    const r = new ResponseReader({ onHead: (_h, w) => (whole = w), onBody: () => assert.fail('no onBody for a whole body'), onEnd: () => {} });
    r.expect(false);
    assert.equal(r.feed(bytes), true);
    assert.equal(whole!.buffer, bytes.buffer, 'no copy');
  });

  it('reads answer after answer, tolerates an empty line between them and refuses any other byte nobody asked for', () => {
    const heads: number[] = [];
    const r = new ResponseReader({ onHead: (h) => void heads.push(h.status), onBody: () => {}, onEnd: () => {} });
    r.expect(false);
    assert.equal(r.feed(res('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx\r\n')), true);
    r.expect(false);
    assert.equal(r.feed(res('HTTP/1.1 201 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')), true);
    assert.equal(r.feed(res('HTTP/1.1 202 OK\r\nContent-Length: 0\r\n\r\n')), false);
    r.expect(false);
    assert.equal(r.feed(res('HTTP/1.1 203 OK\r\nContent-Length: 0\r\n\r\nX')), false);
    assert.deepEqual(heads, [200, 201, 203]);
  });

  it('stops at once when told to from inside a callback', () => {
    let bodies = 0;
    const r: ResponseReader = new ResponseReader({ onHead: () => r.stop(), onBody: () => void bodies++, onEnd: () => assert.fail('stopped') });
    r.expect(false);
    assert.equal(r.feed(res('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx')), true);
    r.expect(false);
    assert.equal(r.feed(res('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n')), true);
    assert.equal(bodies, 0);
  });

  it('says the close-delimited answers will not keep the connection', () => {
    for (const s of ['HTTP/1.1 200 OK\r\n\r\n', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n', 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n']) assert.equal(head(s).keepAlive, false, s);
    assert.deepEqual(head('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n').framing, { kind: 'close' });
  });
});

/** The lines a HeadBytes writes, as text. */
function lines(s: string): string {
  const r = head(s);
  const out = Buffer.alloc(r.size + 8, 0x2a);
  const end = r.writeLines(out, 4);
  assert.equal(end, 4 + r.size, 'writeLines writes exactly size bytes');
  assert.equal(out.toString('latin1', 0, 4) + out.toString('latin1', end), '********', 'and nothing around them');
  return out.toString('latin1', 4, end);
}

describe('ResponseHead.writeLines (the head forwarded as bytes)', () => {
  it('writes the end-to-end lines as writeHead does: lower-case names, values without OWS, obs-text kept', () => {
    assert.equal(lines('HTTP/1.1 200 OK\r\nServer: nginx\r\nX-Pad: \t a b \t\r\nX-Empty:\r\nX-Obs: caf\xe9\r\nContent-Length: 2\r\n\r\nhi'), 'server: nginx\r\nx-pad: a b\r\nx-empty: \r\nx-obs: caf\xe9\r\ncontent-length: 2\r\n');
    const long = 'v'.repeat(300);
    assert.equal(lines(`HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: ${long}\r\nContent-Length: 0\r\n\r\n`), `set-cookie: a=1\r\nset-cookie: ${long}\r\ncontent-length: 0\r\n`);
  });

  it('leaves out hop-by-hop fields whatever their case', () => {
    const r = 'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKEEP-ALIVE: timeout=5\r\nProxy-Connection: x\r\nUpgrade: h2c\r\nTE: trailers\r\nTrailer: x\r\nHTTP2-Settings: y\r\nHost: z\r\nX-Ok: 1\r\nContent-Length: 0\r\n\r\n';
    assert.equal(lines(r), 'x-ok: 1\r\ncontent-length: 0\r\n');
    const s = head(r);
    assert.equal(s.keepAlive, true);
    assert.deepEqual(s.raw.filter((_, i) => i % 2 === 0), ['Connection', 'KEEP-ALIVE', 'Proxy-Connection', 'Upgrade', 'TE', 'Trailer', 'HTTP2-Settings', 'Host', 'X-Ok', 'Content-Length'], 'raw still has every field');
  });

  it('leaves out the fields Connection names, in any of its fields, before or after them', () => {
    const s = 'HTTP/1.1 200 OK\r\nX-Private: secret\r\nConnection: keep-alive, X-PRIVATE\r\nX-Kept: 1\r\nx-later: 2\r\nConnection: x-later\r\nDate: d\r\nContent-Length: 1\r\n\r\nx';
    assert.equal(lines(s), 'x-kept: 1\r\ndate: d\r\ncontent-length: 1\r\n');
    const r = head(s);
    assert.equal(r.hasDate, true);
    assert.equal(r.hasLength, true);
    // Connection naming a framing field: it goes, and the writer must then frame the body itself.
    const cl = head('HTTP/1.1 200 OK\r\nConnection: Content-Length, Date\r\nDate: d\r\nContent-Length: 1\r\n\r\nx');
    assert.deepEqual([cl.hasLength, cl.hasDate, lines('HTTP/1.1 200 OK\r\nConnection: Content-Length, Date\r\nDate: d\r\nContent-Length: 1\r\n\r\nx')], [false, false, '']);
    // "close" is an option and the name of the reserved field Close.
    assert.equal(lines('HTTP/1.1 200 OK\r\nClose: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'), 'content-length: 0\r\n');
    assert.equal(head('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').keepAlive, false);
  });

  it('refuses every head with a byte that has no place in it', () => {
    for (const bad of ['\x00', '\x01', '\x08', '\x0b', '\x0c', '\x1f', '\x7f', '\n', '\r']) {
      const s = `HTTP/1.1 200 OK\r\nX-A: a${bad}b\r\nContent-Length: 0\r\n\r\n`;
      assert.ok(refused(s), JSON.stringify(s));
      assert.ok(refused(`HTTP/1.1 200 O${bad}K\r\nContent-Length: 0\r\n\r\n`), `reason with ${JSON.stringify(bad)}`);
    }
    for (const name of ['X A', 'X\tA', 'X"A', 'X(A', 'X/A', 'X@A', 'X\xe9A', '', ' X-A', '\tX-A', 'X-A ']) {
      const s = `HTTP/1.1 200 OK\r\n${name}: 1\r\nContent-Length: 0\r\n\r\n`;
      assert.ok(refused(s), JSON.stringify(s));
    }
    // Folded (obs-fold) continuation lines, with a space or a tab.
    for (const fold of [' b', '\tb']) assert.ok(refused(`HTTP/1.1 200 OK\r\nX-A: a\r\n${fold}\r\nContent-Length: 0\r\n\r\n`));
    // Content-Length that is not plain digits, or too long, or empty.
    for (const v of ['', '1a', '-1', '1 1', '0x1', '1'.repeat(16), '1,1']) assert.ok(refused(`HTTP/1.1 200 OK\r\nContent-Length: ${v}\r\n\r\n`), v);
  });

  it('takes HTTP/1.0 keep-alive only when Connection says so', () => {
    assert.equal(head('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').keepAlive, false);
    assert.equal(head('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n').keepAlive, true);
    assert.equal(head('HTTP/1.0 200 OK\r\nConnection: x-a, keep-alive\r\nContent-Length: 0\r\n\r\n').keepAlive, true);
    assert.equal(head('HTTP/1.0 200 OK\r\nConnection: , ,\r\nContent-Length: 0\r\n\r\n').keepAlive, false);
  });
});
