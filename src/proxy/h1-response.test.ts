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
