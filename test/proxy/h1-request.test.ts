/**
 * The proxy's own HTTP/1 request parser, without sockets: the whole
 * http-desync-guardian corpus (every Severe case refused, Compliant ones
 * accepted but for two refusals we chose and name here), the strict head
 * grammar, and both body framings fed at every split point.
 */
import assert from 'node:assert/strict';
import { loadDesyncCases } from './desync-corpus.js';
import { describe, it } from 'node:test';
import { ChunkedReader, FramingError, LengthReader } from '../../src/proxy/h1-body.js';
import { parseHead, type H1Head, type HeadResult } from '../../src/proxy/h1-request.js';
import { MAX_HEAD_BYTES, BAD_VALUE, nameIn, nameTable, TCHAR, TOKEN, VCHAR } from '../../src/proxy/http1-guard.js';

const raw = (s: string): Buffer => Buffer.from(s, 'latin1');
const head = (r: HeadResult): H1Head => {
  assert.ok(r && 'head' in r, `expected a parsed head, got ${JSON.stringify(r)}`);
  return r.head;
};
const refused = (r: HeadResult): string => {
  assert.ok(r && 'problem' in r, `expected a refusal, got ${JSON.stringify(r)}`);
  return r.problem.reason;
};

describe('HTTP/1 request parser', () => {
  const cases = loadDesyncCases().map((c) => {
    const hs = c.headers ?? [];
    const host = hs.some((h) => h.name.toLowerCase() === 'host') ? '' : 'Host: web\r\n';
    return { ...c, bytes: raw(`${`${c.method} ${c.uri} ${c.version}`.trimEnd()}\r\n${host}${hs.map((h) => `${h.name}:${h.value}\r\n`).join('')}\r\n`) };
  });

  it('refuses every Severe case of the desync corpus', () => {
    const severe = cases.filter((c) => c.expected.tier === 'Severe');
    assert.ok(severe.length >= 50, `found ${severe.length}`);
    for (const c of severe) assert.ok(refused(parseHead(c.bytes, 0)), `${c.file}: ${c.name}`);
  });

  it('accepts the Compliant cases, except transfer codings other than chunked and an empty request-target', () => {
    const compliant = cases.filter((c) => c.expected.tier === 'Compliant');
    assert.ok(compliant.length >= 20);
    let accepted = 0;
    for (const c of compliant) {
      const r = parseHead(c.bytes, 0);
      if (r && 'head' in r) {
        accepted++;
        continue;
      }
      // Our choices: we frame only "chunked" (a proxy that passes gzip-coded framing on is guessing), and "GET  HTTP/1.1" has no target.
      const te = (c.headers ?? []).filter((h) => h.name.toLowerCase() === 'transfer-encoding').map((h) => String(h.value).trim().toLowerCase());
      if (refused(r) === 'BadTransferEncoding') assert.ok(te.some((v) => v !== 'chunked'), `${c.file}: ${c.name}`);
      else assert.equal(c.uri, '', `${c.file}: ${c.name} refused as ${refused(r)}`);
    }
    assert.ok(accepted >= 20, `accepted ${accepted} of ${compliant.length}`);
  });

  it('reads a plain head: method, target, version, merged headers, framing, keep-alive', () => {
    const b = raw('POST /a?b=1 HTTP/1.1\r\nHost: web\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 5\r\n\r\nhelloGET');
    const r = parseHead(b, 0);
    const h = head(r);
    assert.equal(h.method, 'POST');
    assert.equal(h.url, '/a?b=1');
    assert.equal(h.minor, 1);
    assert.deepEqual(h.rawHeaders, ['Host', 'web', 'X-A', '1', 'x-a', '2', 'Content-Length', '5']);
    assert.equal(h.headers['x-a'], '1, 2');
    assert.deepEqual(h.framing, { kind: 'length', length: 5 });
    assert.equal(h.keepAlive, true);
    assert.equal(b.toString('latin1', r && 'end' in r ? r.end : 0), 'helloGET');
  });

  it('knows keep-alive and upgrade from Connection', () => {
    assert.equal(head(parseHead(raw('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'), 0)).keepAlive, false);
    assert.equal(head(parseHead(raw('GET / HTTP/1.0\r\n\r\n'), 0)).keepAlive, false);
    assert.equal(head(parseHead(raw('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n'), 0)).keepAlive, true);
    assert.equal(head(parseHead(raw('GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n'), 0)).upgrade, true);
    assert.equal(head(parseHead(raw('GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n'), 0)).upgrade, false, 'Upgrade without Connection: upgrade is ignored');
  });

  it('waits for the rest of a head, skips empty lines before it, and limits its size', () => {
    assert.equal(parseHead(raw('GET / HTTP/1.1\r\nHost: a\r\n'), 0), undefined);
    assert.equal(head(parseHead(raw('\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n'), 0)).url, '/x');
    assert.equal(refused(parseHead(raw(`GET / HTTP/1.1\r\nX: ${'a'.repeat(MAX_HEAD_BYTES)}`), 0)), 'HeadTooLarge');
  });

  it('refuses what a lenient parser would read another way', () => {
    const bad: [string, string][] = [
      ['GET / HTTP/1.1\nHost: a\n\n', 'BadHeader'], // bare LF line ends
      ['GET / HTTP/1.1\r\nHost: a\r\nX: 1\nTransfer-Encoding: chunked\r\n\r\n', 'BadHeader'],
      ['GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n', 'BadHeader'], // obs-fold
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n', 'BadHeader'],
      ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \xa0chunked\r\n\r\n', 'BadTransferEncoding'],
      ['POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n', 'BothTeClPresent'],
      ['POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 'BadTransferEncoding'],
      ['POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n', 'BadContentLength'],
      ['get / HTTP/1.1\r\nHost: a\r\n\r\n', 'BadMethod'],
      ['GET /a b HTTP/1.1\r\nHost: a\r\n\r\n', 'BadUri'],
      ['GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n', 'BadUri'],
      ['GET / HTTP/1.2\r\nHost: a\r\n\r\n', 'BadVersion'],
      ['GET / HTTP/1.1\r\n\r\n', 'BadHost'],
      ['GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'BadHost'],
    ];
    for (const [text, reason] of bad) assert.equal(refused(parseHead(raw(text), 0)), reason, JSON.stringify(text));
  });

  it('reads chunked bodies split at any byte, trailers included, and says where the next request starts', () => {
    const wire = raw('5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nGET');
    for (let cut = 1; cut < wire.length; cut++) {
      const r = new ChunkedReader();
      const out: Buffer[] = [];
      let used = r.feed(wire.subarray(0, cut), (b) => out.push(b));
      if (!r.done) {
        assert.equal(used, cut, 'a body that is not done takes everything');
        used += r.feed(wire.subarray(cut), (b) => out.push(b));
      }
      assert.ok(r.done, `cut at ${cut}`);
      assert.equal(Buffer.concat(out).toString(), 'hello world');
      assert.equal(wire.subarray(used).toString(), 'GET', `cut at ${cut}`);
    }
  });

  it('refuses chunked framing that is not exact', () => {
    const bad = ['5\r\nhelloX\r\n', '5 \r\nhello\r\n', 'g\r\n', '5\nhello\r\n', '0\r\nBad Trailer\r\n\r\n', '1234567890abc\r\n'];
    // Extensions only as `;name` or `;name=token|"quoted"`, nothing around their parts.
    bad.push('5 ;a\r\n', '5;a b\r\n', '5; a\r\n', '5;a =b\r\n', '5;a=x y\r\n', '5;\xe9\r\n', '5;a=\r\n', '5;\r\n', '5;a="x\r\n', '5;a,b\r\n');
    for (const b of bad) assert.throws(() => new ChunkedReader().feed(raw(b), () => {}), FramingError, JSON.stringify(b));
    for (const ok of ['5;a\r\n', '5;a=b;c\r\n', '5;a="x y;\\"z\xe9"\r\n']) assert.doesNotThrow(() => new ChunkedReader().feed(raw(ok), () => {}), JSON.stringify(ok));
  });

  it('reads a Content-Length body across chunks and leaves the rest', () => {
    const r = new LengthReader(7);
    const out: Buffer[] = [];
    assert.equal(r.feed(raw('abc'), (b) => out.push(b)), 3);
    assert.equal(r.done, false);
    assert.equal(r.feed(raw('defgGET'), (b) => out.push(b)), 4);
    assert.ok(r.done);
    assert.equal(Buffer.concat(out).toString(), 'abcdefg');
  });

  it('checks bytes with tables that say exactly what TOKEN and BAD_VALUE say', () => {
    for (let c = 0; c < 256; c++) {
      const ch = String.fromCharCode(c);
      assert.equal(TCHAR[c] === 1, TOKEN.test(ch), `tchar ${c}`);
      assert.equal(VCHAR[c] === 1, !BAD_VALUE.test(ch), `value byte ${c}`);
    }
  });

  it('matches field names as bytes exactly as lower-casing their text would', () => {
    const table = nameTable(['te', 'x-2', 'content-length']);
    const tchars = [...Array(256).keys()].filter((c) => TCHAR[c]);
    for (const a of tchars)
      for (const b of tchars) {
        const text = String.fromCharCode(a, b);
        assert.equal(nameIn(table, raw(`.${text}.`), 1, 3), text.toLowerCase() === 'te' ? 'te' : undefined, text);
        const three = raw(`x${text}`);
        assert.equal(nameIn(table, three, 0, 3), `x${text}`.toLowerCase() === 'x-2' ? 'x-2' : undefined, `x${text}`);
      }
    assert.equal(nameIn(table, raw('Content-LENGTH'), 0, 14), 'content-length');
    assert.equal(nameIn(table, raw('Content-Lengths'), 0, 15), undefined);
  });

  it('forwards the end-to-end lines as received, in runs, without hop-by-hop fields, Host or traceparent', () => {
    const wire = 'GET / HTTP/1.1\r\nX-First:  a \r\nHOST: web\r\nUser-Agent: t\r\nconnection: Keep-Alive\r\nKeep-Alive: 5\r\nTE: trailers\r\nTraceParent: 00-x\r\nProxy-Connection: x\r\nX-Last: caf\xe9\r\n\r\n';
    const h = head(parseHead(raw(wire), 0));
    assert.deepEqual(h.forward, { text: 'X-First:  a \r\nUser-Agent: t\r\nTE: trailers\r\nX-Last: caf\xe9\r\n', hasLength: false });
    assert.equal(h.traceparent, '00-x');
    assert.equal(h.host, 'web');
    assert.deepEqual(h.rawHeaders.filter((_, i) => i % 2 === 0), ['X-First', 'HOST', 'User-Agent', 'connection', 'Keep-Alive', 'TE', 'TraceParent', 'Proxy-Connection', 'X-Last']);
    assert.equal(h.headers['x-first'], 'a');
    // TE other than "trailers" is hop-by-hop like the rest; Content-Length is forwarded and noted.
    const p = head(parseHead(raw('POST / HTTP/1.1\r\nHost: a\r\nTE: gzip\r\nContent-LENGTH: 3\r\n\r\nabc'), 0));
    assert.deepEqual(p.forward, { text: 'Content-LENGTH: 3\r\n', hasLength: true });
    // Connection naming another field: the caller must build the header object and drop it.
    assert.equal(head(parseHead(raw('GET / HTTP/1.1\r\nHost: a\r\nConnection: x-a\r\nX-A: 1\r\n\r\n'), 0)).forward, undefined);
  });

  it('names the line and the reason when a header line is refused', () => {
    const detail = (text: string): string => {
      const r = parseHead(raw(text), 0);
      assert.ok(r && 'problem' in r, text);
      return `${r.problem.reason}: ${r.problem.detail}`;
    };
    assert.equal(detail('GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n'), 'BadHeader: header line " folded" has no name');
    assert.equal(detail('GET / HTTP/1.1\r\nHost: a\r\nX A: 1\r\n\r\n'), 'BadHeader: header name "X A" is not a token');
    assert.equal(detail('GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x7f\r\n\r\n'), 'BadHeader: header X-A has a control character in its value');
    assert.equal(detail('GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n'), 'BadHeader: header X-A has a control character in its value');
    assert.equal(detail('GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\n2\r\n\r\n'), 'BadHeader: header X-A has a control character in its value');
    assert.equal(detail('GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n'), 'BadHeader: header line "X-A" has no name');
    // In order: the first bad line decides, framing included.
    assert.equal(detail('GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\ncontent-length: 1\r\nX A: 1\r\n\r\n'), 'MultipleContentLength: Content-Length appears more than once');
  });
});
