/**
 * The proxy's HTTP/1 request parser (src/proxy/h1-request.ts, src/proxy/h1-body.ts), without
 * sockets. Inputs: heads built from the grammar with odd parts (methods,
 * targets, versions, header names and values with controls, obs-fold,
 * duplicated and conflicting Content-Length and Transfer-Encoding, bare CR
 * and LF), then a body and pipelined bytes; the desync corpus's cases and
 * the committed seeds, cut and spliced; random bytes.
 *
 * What must hold: parseHead never throws and returns nothing yet, a
 * refusal with its reason, or a head whose `end` lies inside the input; it
 * answers the same on any prefix that holds the whole head, and on a
 * shorter prefix it waits or refuses, and refuses early only what it also
 * refuses whole; a body fed to its reader in any cut gives the same bytes
 * and the same verdict, and a reader throws nothing but a FramingError.
 */
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { ChunkedReader, FramingError, LengthReader, type BodyReader } from '../../../src/proxy/h1-body.js';
import { parseHead, type HeadResult } from '../../../src/proxy/h1-request.js';
import { desyncRequest, loadDesyncCases } from '../../proxy/desync-corpus.js';
import type { FuzzTarget } from '../fuzz.js';

const b = (s: string) => Buffer.from(s, 'latin1');
const odd = fc.constantFrom('', ' ', '\t', '\r', '\n', '\r\n', '\x00', '\x7f', '\xff', ',', ';', ':', '"', '\r\n ', '\r\n\t');
const token = fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PRI', 'get', 'G ET', ''), fc.string({ unit: 'binary-ascii', maxLength: 10 }));
const target = fc.oneof(fc.constantFrom('/', '/a?b=1', '*', 'http://x/y', 'x:80', '', '/%00', '/\x7f', '//', '/ /', '/#f'), fc.string({ unit: 'binary-ascii', maxLength: 30 }));
const version = fc.oneof(fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'http/1.1', 'HTTP/1.1 ', 'HTTP/1', ''), fc.string({ unit: 'binary-ascii', maxLength: 10 }));
const framingValue = fc.oneof(
  fc.constantFrom('0', '5', '10', '-1', '+5', '5, 5', '5,6', ' 5', '0x5', '99999999999999999999', 'chunked', 'Chunked', 'chunked, chunked', 'gzip, chunked', 'chunked, gzip', 'identity', ' chunked', 'chunked\x00', 'x'),
  fc.nat({ max: 200 }).map(String),
);
const header = fc.oneof(
  fc.tuple(fc.constantFrom('Content-Length', 'Transfer-Encoding', 'content-length', 'transfer-encoding', 'Content-Length ', ' Transfer-Encoding', 'Transfer_Encoding'), framingValue),
  fc.tuple(fc.constantFrom('Host', 'Connection', 'Upgrade', 'Expect', 'Content-Type', 'traceparent', 'Keep-Alive', 'TE', 'Trailer', 'Proxy-Connection', 'X-A'),
    fc.oneof(fc.constantFrom('close', 'keep-alive', 'upgrade', 'Upgrade, close', 'websocket', '100-continue', 'web', 'x, X-A', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'), fc.string({ unit: 'binary-ascii', maxLength: 20 }))),
  fc.tuple(fc.string({ unit: 'binary-ascii', minLength: 0, maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 20 })),
).chain(([n, v]) => fc.tuple(fc.constant(n), fc.constant(v), odd, odd).map(([name, value, before, after]) => `${name}:${before}${value}${after}`));
const body = fc.oneof(
  fc.constantFrom('', 'hello', '5\r\nhello\r\n0\r\n\r\n', '0\r\n\r\n', '0\r\nX: y\r\n\r\n', '5;ext=1\r\nhello\r\n0\r\n\r\n', '5\nhello\n0\n\n', 'zz\r\n', '3\r\nabcde\r\n0\r\n\r\n', 'FFFFFFFFFFFFF\r\n'),
  fc.string({ unit: 'binary', maxLength: 60 }),
);

const built = fc.record({
  lead: fc.constantFrom('', '\r\n', '\r\n\r\n', '\n'),
  method: token, target, version, sep1: fc.constantFrom(' ', '  ', '\t', ''), sep2: fc.constantFrom(' ', '  ', '\t', ''),
  eol: fc.constantFrom('\r\n', '\n', '\r', '\r\r\n'),
  headers: fc.array(header, { maxLength: 6 }), host: fc.boolean(), end: fc.constantFrom('\r\n', '\n', '', '\r\n\r\n'),
  body, next: fc.constantFrom('', 'GET / HTTP/1.1\r\nHost: web\r\n\r\n', 'GET'),
}).map((r) => b(`${r.lead}${r.method}${r.sep1}${r.target}${r.sep2}${r.version}${r.eol}${r.host ? 'Host: web\r\n' : ''}${r.headers.map((h) => `${h}\r\n`).join('')}${r.end}${r.body}${r.next}`));

function shape(r: HeadResult, len: number): void {
  if (r === undefined) return;
  if ('problem' in r) {
    if (!r.problem.reason || typeof r.problem.detail !== 'string') throw new Error(`a refusal without a reason: ${JSON.stringify(r)}`);
    return;
  }
  if (!(r.end > 0 && r.end <= len)) throw new Error(`head end ${r.end} outside 1..${len}`);
  if (r.head.rawHeaders.length % 2) throw new Error('rawHeaders of odd length');
  void r.head.headers; // built on first use: must not throw
}

function head(r: HeadResult) {
  return r && 'head' in r ? { end: r.end, method: r.head.method, url: r.head.url, minor: r.head.minor, raw: r.head.rawHeaders, framing: r.head.framing, keepAlive: r.head.keepAlive, upgrade: r.head.upgrade, forward: r.head.forward } : r;
}

/** Feeds BODY to a reader in the given cuts: the bytes it handed out, what it consumed, and its verdict. */
function read(make: () => BodyReader, body: Buffer, cuts: number[]): { data: string; used: number; done: boolean; error?: string } {
  const reader = make();
  const data: Buffer[] = [];
  let used = 0;
  let pos = 0;
  try {
    for (const end of [...cuts.map((c) => c % (body.length + 1)).sort((x, y) => x - y), body.length]) {
      if (end < pos || reader.done) continue;
      let part = body.subarray(pos, end);
      pos = end;
      while (part.length && !reader.done) {
        const n = reader.feed(part, (d) => data.push(Buffer.from(d)));
        if (n < 0 || n > part.length) throw new Error(`feed consumed ${n} of ${part.length}`);
        used += n;
        if (n === 0) break;
        part = part.subarray(n);
      }
      if (part.length && reader.done) break;
    }
  } catch (e) {
    if (!(e instanceof FramingError)) throw new Error(`a body reader threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    // What a refused body had consumed depends on where the cut fell: only the data handed out before it counts.
    return { data: Buffer.concat(data).toString('latin1'), used: -1, done: reader.done, error: e.problem.reason };
  }
  return { data: Buffer.concat(data).toString('latin1'), used, done: reader.done };
}

interface Input { bytes: Buffer; cuts: number[] }

export const h1ParserTarget: FuzzTarget<Input, undefined> = {
  name: 'h1-parser',
  what: 'parseHead and the body readers: never a throw, the same answer however the bytes are cut, early refusals only of what is refused whole',
  async setup() { return undefined; },
  async teardown() {},
  seed: (text) => ({ bytes: b(text), cuts: [] }),
  inputs(seeds) {
    const corpus = [...seeds.map((s) => s.bytes), ...loadDesyncCases().map(desyncRequest)];
    const fromCorpus = fc.oneof(
      fc.constantFrom(...corpus),
      fc.tuple(fc.constantFrom(...corpus), fc.constantFrom(...corpus), fc.nat(), fc.nat()).map(([x, y, i, j]) => Buffer.concat([x.subarray(0, i % (x.length + 1)), y.subarray(j % (y.length + 1))])),
      fc.tuple(fc.constantFrom(...corpus), fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 3 })).map(([x, i, ins]) => { const k = i % (x.length + 1); return Buffer.concat([x.subarray(0, k), Buffer.from(ins), x.subarray(k)]); }),
    );
    const bytes = fc.oneof({ arbitrary: built, weight: 5 }, { arbitrary: fromCorpus, weight: 3 }, { arbitrary: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)), weight: 1 });
    return fc.record({ bytes, cuts: fc.array(fc.nat(), { maxLength: 5 }) });
  },
  check(_ctx, { bytes, cuts }) {
    const whole = parseHead(bytes, 0);
    shape(whole, bytes.length);
    const full = head(whole);
    const refusedWhole = !!whole && 'problem' in whole;
    for (const c of [...cuts, 1, bytes.length - 1]) {
      const k = c % (bytes.length + 1);
      const r = parseHead(bytes.subarray(0, k), 0);
      shape(r, k);
      if (whole && 'head' in whole && k >= whole.end) {
        if (!isDeepStrictEqual(head(r), full)) throw new Error(`a prefix of ${k} bytes holding the whole head parses otherwise: ${JSON.stringify(head(r))} vs ${JSON.stringify(full)}`);
      } else if (r && 'head' in r) {
        throw new Error(`a prefix of ${k} bytes parses as a head the whole input does not have: ${JSON.stringify(head(r))} vs ${JSON.stringify(full)}`);
      } else if (r && 'problem' in r && !refusedWhole && k < bytes.length) {
        throw new Error(`refused at ${k} bytes (${r.problem.reason}: ${r.problem.detail}) what is accepted or awaited whole: ${JSON.stringify(full)}`);
      }
    }
    if (!whole || !('head' in whole)) return;
    const rest = bytes.subarray(whole.end);
    const framing = whole.head.framing;
    const make = framing.kind === 'chunked' ? () => new ChunkedReader() : framing.kind === 'length' ? () => new LengthReader(framing.length) : undefined;
    if (!make) return;
    const one = read(make, rest, []);
    const cut = read(make, rest, cuts);
    if (!isDeepStrictEqual(one, cut)) throw new Error(`the body reads otherwise when cut at ${cuts}: ${JSON.stringify(one)} vs ${JSON.stringify(cut)}`);
  },
};
