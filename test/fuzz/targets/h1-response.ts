/**
 * The proxy's HTTP/1 response reader (src/proxy/h1-response.ts), without
 * sockets. Inputs: answers built from the grammar with odd parts (versions,
 * status codes, reasons, header names and values with controls, obs-fold,
 * repeated and conflicting Content-Length and Transfer-Encoding, bare CR
 * and LF, 1xx before the answer, chunked bodies with extensions and
 * trailers, bytes after the answer), to GET or HEAD; the committed seeds,
 * cut and spliced; random bytes.
 *
 * What must hold: the reader throws nothing but a FramingError; it reads
 * the same however the bytes are cut; and what it accepts whole, Node's
 * llhttp accepts too and reads the same (status, header fields, keep-alive,
 * body, trailers), so the proxy never takes an answer its backend's own
 * HTTP stack would not.
 */
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { FramingError } from '../../../src/proxy/h1-body.js';
import { llhttp, ours, without } from '../../proxy/response-reference.js';
import type { FuzzTarget } from '../fuzz.js';

const b = (s: string) => Buffer.from(s, 'latin1');
const odd = fc.constantFrom('', ' ', '\t', '\r', '\n', '\x00', '\x7f', '\xff', ',', ';', ':', '\r\n ', '\r\n\t');
const statusLine = fc.record({
  version: fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'http/1.1', 'HTTP/1', ''),
  status: fc.oneof(fc.constantFrom('200', '204', '304', '404', '500', '101', '099', '600', '20', '2000', 'abc'), fc.integer({ min: 100, max: 599 }).map(String)),
  reason: fc.oneof(fc.constantFrom(' OK', '', ' ', ' O\x01K', ' caf\xe9'), fc.string({ unit: 'binary-ascii', maxLength: 8 }).map((s) => ` ${s}`)),
  eol: fc.constantFrom('\r\n', '\r\n', '\r\n', '\n', '\r'),
}).map((r) => `${r.version} ${r.status}${r.reason}${r.eol}`);
const framingValue = fc.oneof(
  fc.constantFrom('0', '3', '5', '-1', '+5', '5, 5', ' 5', '0x5', '99999999999999999999', 'chunked', 'Chunked', 'gzip, chunked', 'chunked, gzip', 'gzip', 'identity', 'chunked\x00', ''),
  fc.nat({ max: 40 }).map(String),
);
const header = fc.oneof(
  fc.tuple(fc.constantFrom('Content-Length', 'Transfer-Encoding', 'content-length', 'transfer-encoding', 'Content-Length ', ' Transfer-Encoding'), framingValue),
  fc.tuple(fc.constantFrom('Connection', 'Keep-Alive', 'Trailer', 'Upgrade', 'Date', 'X-A', 'Set-Cookie'), fc.oneof(fc.constantFrom('close', 'keep-alive', 'upgrade', 'x-a', 'Keep-Alive, X-A', 'a=1'), fc.string({ unit: 'binary-ascii', maxLength: 12 }))),
  fc.tuple(fc.string({ unit: 'binary-ascii', maxLength: 10 }), fc.string({ unit: 'binary', maxLength: 12 })),
).chain(([n, v]) => fc.tuple(odd, odd).map(([before, after]) => `${n}:${before}${v}${after}\r\n`));
const body = fc.oneof(
  fc.constantFrom('', 'abc', 'hello', '3\r\nabc\r\n0\r\n\r\n', '0\r\n\r\n', '0\r\nX-Sum: 1\r\n\r\n', '3;e=1\r\nabc\r\n0\r\n\r\n', '3\nabc\n0\n\n', 'zz\r\n', '1\r\nab\r\n0\r\n\r\n', '0\r\nX: a\r\n b\r\n\r\n'),
  fc.string({ unit: 'binary', maxLength: 40 }),
);

const built = fc.record({
  lead: fc.constantFrom('', '', '\r\n', '\n'),
  interim: fc.constantFrom('', '', 'HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n', 'HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\n'),
  status: statusLine,
  headers: fc.array(header, { maxLength: 6 }),
  end: fc.constantFrom('\r\n', '\r\n', '\n', ''),
  body,
  after: fc.constantFrom('', '', '\r\n', 'HTTP/1.1 200 OK\r\n\r\n', 'x'),
}).map((r) => b(`${r.lead}${r.interim}${r.status}${r.headers.join('')}${r.end}${r.body}${r.after}`));

interface Input { bytes: Buffer; cuts: number[]; head: boolean }

export const h1ResponseTarget: FuzzTarget<Input, undefined> = {
  name: 'h1-response',
  what: 'the response reader: only FramingError thrown, the same reading however the bytes are cut, and nothing accepted that llhttp refuses or reads otherwise',
  async setup() { return undefined; },
  async teardown() {},
  seed: (text) => ({ bytes: b(text), cuts: [], head: false }),
  inputs(seeds) {
    const corpus = seeds.length ? seeds.map((s) => s.bytes) : [b('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc')];
    const fromCorpus = fc.oneof(
      fc.constantFrom(...corpus),
      fc.tuple(fc.constantFrom(...corpus), fc.constantFrom(...corpus), fc.nat(), fc.nat()).map(([x, y, i, j]) => Buffer.concat([x.subarray(0, i % (x.length + 1)), y.subarray(j % (y.length + 1))])),
      fc.tuple(fc.constantFrom(...corpus), fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 3 })).map(([x, i, ins]) => { const k = i % (x.length + 1); return Buffer.concat([x.subarray(0, k), Buffer.from(ins), x.subarray(k)]); }),
    );
    const bytes = fc.oneof({ arbitrary: built, weight: 6 }, { arbitrary: fromCorpus, weight: 3 }, { arbitrary: fc.uint8Array({ maxLength: 120 }).map((a) => Buffer.from(a)), weight: 1 });
    return fc.record({ bytes, cuts: fc.array(fc.nat(), { maxLength: 4 }), head: fc.boolean() });
  },
  check(_ctx, { bytes, cuts, head }) {
    // ours() lets through nothing but a FramingError: anything else thrown fails the property.
    const whole = ours(bytes, [], head);
    const k = cuts.map((c) => c % (bytes.length + 1));
    const cut = ours(bytes, k, head);
    if (whole instanceof FramingError || cut instanceof FramingError) {
      if (whole instanceof FramingError !== cut instanceof FramingError) throw new Error(`refused one way only (cut at ${k}): ${String(whole)} vs ${String(cut)}`);
      return;
    }
    // Bytes after the answer stop the reader where they are seen; a CRLF split between two reads is seen earlier.
    if (!whole.stray && !cut.stray && !isDeepStrictEqual(without(whole), without(cut))) throw new Error(`reads otherwise when cut at ${k}: ${JSON.stringify(without(cut))} vs ${JSON.stringify(without(whole))}`);
    if (whole.stray || !whole.complete) return;
    // A 101 ends HTTP/1 on the connection: the reader hands it over and the client refuses it (h1-client.ts), while
    // the llhttp binding reports an upgrade as a parse error here. Nothing to compare.
    if (whole.status === 101) return;
    const ref = llhttp(bytes, head);
    if (ref instanceof Error) throw new Error(`accepted what llhttp refuses (${ref.message}): ${JSON.stringify(without(whole))}`);
    if (!isDeepStrictEqual(without(whole), ref)) throw new Error(`read otherwise than llhttp: ${JSON.stringify(without(whole))} vs ${JSON.stringify(ref)}`);
  },
};
