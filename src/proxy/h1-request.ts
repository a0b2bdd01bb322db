/**
 * The proxy's HTTP/1.x request head parser (the body framings are in
 * h1-body.ts, shared with the response reader). Strict on purpose — CRLF line
 * ends only, no obs-fold, no whitespace before the colon, upper-case token
 * methods, a request-target without controls or spaces, exactly one Host
 * (RFC 9112 3.2) — because a proxy that accepts what its backend might read
 * differently is a request-smuggling proxy. Every refusal is a
 * FramingProblem; the server answers 400 and closes.
 *
 * Why our own and not a library: Node's llhttp binding is internal to Node,
 * undici's llhttp build is internal to undici (not exported), and the head
 * grammar is small; owning it lets the desync rules (http1-guard.ts) run
 * inside the one pass that splits the lines. Upstream answers are read by
 * the same byte tables and body readers (h1-response.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { headersFromRaw } from './h1-client.js';
import { HOP_BY_HOP } from './hop-by-hop.js';
import { checkFraming, checkHeader, MAX_HEAD_BYTES, nameIn, nameTable, newTally, pushField, rawFields, TCHAR, TOKEN, VCHAR, type FramingProblem } from './http1-guard.js';

const REQUEST_LINE = /^([A-Z][A-Z-]*) ([^\x00-\x20\x7f]+) HTTP\/1\.([01])$/;
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
/** A Connection header that names no other field to drop. */
const ONLY_CONNECTION_OPTIONS = /^(?:[\t ,]*(?:close|keep-alive|upgrade)[\t ]*)(?:,[\t ]*(?:close|keep-alive|upgrade)?[\t ]*)*$/i;

export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' };
const NO_BODY: BodyFraming = Object.freeze({ kind: 'none' });
const CHUNKED: BodyFraming = Object.freeze({ kind: 'chunked' });

export interface H1Head {
  method: string;
  /** Request-target as received (origin-form path and query, normally). */
  url: string;
  /** HTTP/1.minor */
  minor: 0 | 1;
  /** [name, value, …]: names as received, values without OWS. */
  readonly rawHeaders: string[];
  /** Lower-case names, duplicates merged as Node's IncomingMessage does; built on first use. */
  readonly headers: IncomingHttpHeaders;
  /** The few fields the proxy reads on every request, picked up while parsing (first occurrence). */
  host: string | undefined;
  contentType: string | undefined;
  traceparent: string | undefined;
  expect: string | undefined;
  framing: BodyFraming;
  /** The client lets the connection live after this exchange. */
  keepAlive: boolean;
  /** Connection: upgrade together with an Upgrade header. */
  upgrade: boolean;
  /**
   * The end-to-end header lines as received, CRLF-terminated, ready to
   * forward: hop-by-hop fields, Host and traceparent left out (the proxy
   * writes its own), and whether they hold Content-Length. undefined when
   * Connection names further fields to drop.
   */
  forward: { text: string; hasLength: boolean } | undefined;
}

export type HeadResult = { head: H1Head; end: number } | { problem: FramingProblem } | undefined;

function hasToken(list: string | undefined, token: string): boolean {
  if (list === undefined) return false;
  const s = list.toLowerCase();
  if (s === token) return true;
  for (const part of s.split(',')) if (part.trim() === token) return true;
  return false;
}

const CRLF = Buffer.from('\r\n', 'latin1');

/**
 * The field names the parser acts on: a name is compared as bytes against
 * these and never made into a string. Hop-by-hop ones are not forwarded,
 * the rest feed the head's framing and its picked-up fields.
 */
const WATCHED = nameTable([...HOP_BY_HOP, 'content-length', 'transfer-encoding', 'content-type', 'traceparent', 'expect']);

/** Why a header line was refused, found again on its text (the error path only). */
function lineProblem(line: string): FramingProblem {
  const colon = line.indexOf(':');
  if (colon <= 0) return { reason: 'BadHeader', detail: `header line ${JSON.stringify(line.slice(0, 40))} has no name` };
  const name = line.slice(0, colon);
  if (!TOKEN.test(name)) return { reason: 'BadHeader', detail: `header name ${JSON.stringify(name)} is not a token` };
  return { reason: 'BadHeader', detail: `header ${name} has a control character in its value` };
}

/**
 * Looks for a complete head in buf[from…]. undefined: not complete yet (the
 * caller waits for more bytes); `end` is where the body or next request
 * starts. Empty lines before the request line are skipped (RFC 9112 2.2).
 *
 * The header lines are read on the bytes: one pass checks each byte against
 * tables (token names, values without controls, CRLF line ends), compares
 * only the names the proxy acts on, and makes strings only for their
 * values; the lines to forward are sliced out in runs, as received.
 */
export function parseHead(buf: Buffer, from: number, scanFrom = from): HeadResult {
  while (buf.length - from >= 2 && buf[from] === 13 && buf[from + 1] === 10) from += 2;
  const stop = buf.indexOf(CRLFCRLF, Math.max(from, scanFrom));
  if (stop < 0) {
    if (buf.length - from > MAX_HEAD_BYTES) return { problem: { reason: 'HeadTooLarge', detail: `request head over ${MAX_HEAD_BYTES} bytes` } };
    // A bare LF would end the head for a lenient reader but never for us: refuse it now instead of waiting.
    for (let i = Math.max(from, scanFrom); i < buf.length; i++) if (buf[i] === 10 && (i === from || buf[i - 1] !== 13)) return { problem: { reason: 'BadHeader', detail: 'bare LF in the request head' } };
    return undefined;
  }
  if (stop - from > MAX_HEAD_BYTES) return { problem: { reason: 'HeadTooLarge', detail: `request head over ${MAX_HEAD_BYTES} bytes` } };
  // The request line ends at the first CRLF (stop at the latest).
  const eol = buf.indexOf(CRLF, from);
  const requestLine = buf.toString('latin1', from, eol);
  const m = REQUEST_LINE.exec(requestLine);
  if (!m) return { problem: requestLineProblem(requestLine) };
  const minor = m[3] === '0' ? 0 : 1;
  const lines: number[] = [];
  const tally = newTally();
  let hosts = 0;
  let forwardLines = '';
  let runStart = -1;
  let runEnd = -1;
  let host: string | undefined;
  let conn: string | undefined;
  let upgrade = false;
  let contentType: string | undefined;
  let traceparent: string | undefined;
  let expect: string | undefined;
  // i is at the CR ending the previous line; stop is the CR ending the last.
  let i = eol;
  while (i < stop) {
    const start = i + 2;
    let p = start;
    while (TCHAR[buf[p]!]) p++;
    const colon = p;
    let ok = colon > start && buf[colon] === 0x3a; /* : */
    if (ok) {
      p++;
      while (VCHAR[buf[p]!]) p++;
      ok = buf[p] === 13 && buf[p + 1] === 10;
    }
    // No name (a line starting with whitespace: obs-fold), a name not ended by a colon, or a byte with no place in a head (bare CR or LF, a control).
    if (!ok) return { problem: lineProblem(buf.toString('latin1', start, buf.indexOf(CRLF, start))) };
    const f = pushField(lines, buf, start, colon, p);
    const a = lines[f + 2]!;
    const b = lines[f + 3]!;
    i = p;
    const lower = nameIn(WATCHED, buf, start, colon);
    let forward = true;
    if (lower !== undefined) {
      const value = buf.toString('latin1', a, b);
      const problem = checkHeader(lower, value, tally);
      if (problem) return { problem };
      switch (lower) {
        case 'host':
          if (++hosts > 1) return { problem: { reason: 'BadHost', detail: 'Host appears more than once' } };
          host = value;
          break;
        case 'connection':
          conn = conn === undefined ? value : `${conn}, ${value}`;
          break;
        case 'upgrade':
          upgrade = true;
          break;
        case 'content-type':
          contentType ??= value;
          break;
        case 'traceparent':
          traceparent ??= value;
          break;
        case 'expect':
          expect ??= value;
          break;
      }
      // Hop-by-hop fields stay here (TE: trailers excepted: the backend may send trailers); traceparent is the proxy's to write.
      forward = !HOP_BY_HOP.has(lower) ? lower !== 'traceparent' : lower === 'te' && value === 'trailers';
    }
    if (forward) {
      if (start !== runEnd) {
        if (runStart >= 0) forwardLines += buf.toString('latin1', runStart, runEnd);
        runStart = start;
      }
      runEnd = p + 2;
    }
  }
  if (runStart >= 0) forwardLines += buf.toString('latin1', runStart, runEnd);
  const problem = checkFraming(tally, minor);
  if (problem) return { problem };
  if (minor === 1 && hosts === 0) return { problem: { reason: 'BadHost', detail: 'HTTP/1.1 request without Host' } };
  const framing: BodyFraming = tally.teCount ? CHUNKED : tally.contentLength > 0 ? { kind: 'length', length: tally.contentLength } : NO_BODY;
  const head = new ParsedHead(m[1]!, m[2]!, minor, buf, lines, framing);
  head.host = host;
  head.contentType = contentType;
  head.traceparent = traceparent;
  head.expect = expect;
  head.keepAlive = minor === 1 ? !hasToken(conn, 'close') : hasToken(conn, 'keep-alive');
  head.upgrade = upgrade && hasToken(conn, 'upgrade');
  head.forward = conn === undefined || ONLY_CONNECTION_OPTIONS.test(conn) ? { text: forwardLines, hasLength: tally.clCount > 0 } : undefined;
  return { head, end: stop + 4 };
}

/** A class, not an object literal with a getter: V8 builds those through a slow path, several µs each. */
class ParsedHead implements H1Head {
  host: string | undefined;
  contentType: string | undefined;
  traceparent: string | undefined;
  expect: string | undefined;
  keepAlive = true;
  upgrade = false;
  forward: H1Head['forward'];
  private built: IncomingHttpHeaders | undefined;
  private raw: string[] | undefined;

  constructor(
    readonly method: string,
    readonly url: string,
    readonly minor: 0 | 1,
    private readonly buf: Buffer,
    /** Per header line: name start, colon, value start and end (OWS excluded). */
    private readonly lines: number[],
    readonly framing: BodyFraming,
  ) {}

  /** Made on first read: an HTTP/1 request forwarded as is never needs them. */
  get rawHeaders(): string[] {
    return (this.raw ??= rawFields(this.buf, this.lines));
  }

  get headers(): IncomingHttpHeaders {
    return (this.built ??= headersFromRaw(this.rawHeaders));
  }
}

function requestLineProblem(line: string): FramingProblem {
  const parts = line.split(' ');
  const detail = JSON.stringify(line.slice(0, 80));
  if (parts.length === 3 && !/^HTTP\/1\.[01]$/.test(parts[2]!)) return { reason: 'BadVersion', detail };
  if (!/^[A-Z][A-Z-]*$/.test(parts[0] ?? '')) return { reason: 'BadMethod', detail };
  return { reason: 'BadUri', detail };
}
