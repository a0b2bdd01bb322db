/**
 * The one reader of HTTP/1.x responses: every answer from an HTTP/1
 * upstream goes through ResponseReader, whatever its framing (Content-Length,
 * chunked with trailers, close-delimited; no body for HEAD, 1xx, 204, 304),
 * whether it comes in one read or many.
 *
 * What it accepts, and why: the head by the same byte tables as requests
 * (http1-guard.ts) — token names, values without control characters
 * (obs-text allowed: backends send it), CRLF line ends, no obs-fold — and
 * bodies by the same readers (h1-body.ts). A response is forwarded, so an
 * answer two readers could frame differently (Content-Length together with
 * Transfer-Encoding, Content-Length twice or not a plain decimal) is refused
 * rather than guessed at: the connection it came on is closed and the
 * caller sees an error, never a body cut in the wrong place. Unlike
 * requests, what a backend may legitimately send is wider: a missing
 * reason phrase, a Transfer-Encoding list whose final coding is chunked,
 * one whose final coding is not (then the body runs to the close, RFC 9112
 * 6.3), no framing at all (the same), empty lines before the status line
 * (RFC 9112 2.2). Node's own llhttp accepts all of these too; this reader
 * accepts a subset of what llhttp accepts (h1-response.test.ts checks the
 * two agree wherever both accept).
 *
 * Why not llhttp: each trip through Node's binding (native call, header
 * strings, a copy of the body, three callbacks back into JavaScript)
 * profiled at about 8% of the proxy's CPU per request, and turning the head
 * into strings and back cost as much again. Here one scan over the head
 * checks every byte and notes where each line is; the lines to forward are
 * copied as bytes (HeadBytes), strings are made only for the few fields
 * that decide framing, and for the whole head only if someone asks (`raw`,
 * for response header rules).
 */
import { ChunkedReader, FramingError, LengthReader, type BodyReader } from './h1-body.js';
import { dropsField, HOP_BY_HOP, namedInConnection } from './hop-by-hop.js';
import { MAX_HEAD_BYTES, nameIn, nameTable, pushField, rawFields, TCHAR, VCHAR, type FramingProblem } from './http1-guard.js';
import { withoutOws } from './ows.js';

/**
 * An upstream head to forward, kept as bytes: its header lines, hop-by-hop
 * ones and those Connection names already left out, written out as
 * writeHead writes lines (lower-case name, ": ", the value without OWS).
 */
export interface HeadBytes {
  /** How many bytes writeLines writes. */
  readonly size: number;
  /** Among the kept lines. */
  readonly hasLength: boolean;
  readonly hasDate: boolean;
  /** Writes the kept lines (each CRLF-terminated) into `out` at `at`; returns the offset after them. */
  writeLines(out: Buffer, at: number): number;
}

export type ResponseFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };
const NO_BODY: ResponseFraming = Object.freeze({ kind: 'none' });
const CHUNKED: ResponseFraming = Object.freeze({ kind: 'chunked' });
const UNTIL_CLOSE: ResponseFraming = Object.freeze({ kind: 'close' });

const HTTP1 = Buffer.from('HTTP/1.', 'latin1');

/** The names acted on (compared as bytes, never made into strings): hop-by-hop fields and those framing reads. */
const WATCHED = nameTable([...HOP_BY_HOP, 'content-length', 'date']);

export class ResponseHead implements HeadBytes {
  /** Offsets into `lines` of the lines to forward. */
  private readonly keep: number[] = [];
  size = 0;
  hasLength = false;
  hasDate = false;
  /** The connection may carry another exchange after this one (close-delimited bodies say no later). */
  keepAlive: boolean;
  private names: string[] | undefined;

  constructor(
    readonly status: number,
    readonly minor: 0 | 1,
    keepAlive: boolean,
    readonly framing: ResponseFraming,
    private readonly src: Buffer,
    /** Per header line: start, colon, value start, value end (OWS excluded)… */
    private readonly lines: number[],
    /** …and its name when it is one of WATCHED. */
    lower: (string | undefined)[],
    named: ReadonlySet<string> | undefined,
  ) {
    this.keepAlive = keepAlive;
    // Lengths of the names Connection lists that the scan did not look for (none for "keep-alive" or "close").
    let unwatched: number[] | undefined;
    if (named) for (const n of named) if (!WATCHED.get(n.length)?.includes(n)) (unwatched ??= []).push(n.length);
    for (let k = 0, j = 0; j < lines.length; k++, j += 4) {
      const start = lines[j]!;
      const colon = lines[j + 1]!;
      let l = lower[k];
      if (l === undefined && unwatched?.includes(colon - start)) l = src.toString('latin1', start, colon).toLowerCase();
      if (l !== undefined) {
        if (dropsField(l, named)) continue;
        if (l === 'content-length') this.hasLength = true;
        else if (l === 'date') this.hasDate = true;
      }
      this.keep.push(j);
      this.size += colon - start + 2 + lines[j + 3]! - lines[j + 2]! + 2;
    }
  }

  writeLines(out: Buffer, at: number): number {
    const src = this.src;
    const lines = this.lines;
    for (const j of this.keep) {
      const colon = lines[j + 1]!;
      for (let p = lines[j]!; p < colon; p++) {
        const c = src[p]!;
        out[at++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
      }
      out[at++] = 0x3a;
      out[at++] = 0x20;
      const b = lines[j + 3]!;
      // A native copy costs more than a loop for the short values most fields have.
      if (b - lines[j + 2]! > 32) at += src.copy(out, at, lines[j + 2]!, b);
      else for (let p = lines[j + 2]!; p < b; p++) out[at++] = src[p]!;
      out[at++] = 13;
      out[at++] = 10;
    }
    return at;
  }

  /** Names as received and values without surrounding whitespace, alternating (as IncomingMessage's rawHeaders). */
  get raw(): string[] {
    return (this.names ??= rawFields(this.src, this.lines));
  }
}

export type ResponseHeadResult = { head: ResponseHead; end: number } | { problem: FramingProblem } | undefined;

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;
const bad = (detail: string, reason: FramingProblem['reason'] = 'BadHeader'): { problem: FramingProblem } => ({ problem: { reason, detail } });

/** The last coding a Transfer-Encoding list names, lower-case. */
function finalCoding(te: string): string {
  const k = te.lastIndexOf(',');
  return withoutOws(k < 0 ? te : te.slice(k + 1)).toLowerCase();
}

/**
 * Reads a response head from buf[from…]: undefined while it is not all
 * there (the caller bounds how long it waits), a problem when a byte has no place in it, or the head and where its
 * body starts. `noBody`: the request was HEAD (RFC 9110 9.3.2: no body,
 * whatever the head says).
 *
 * No search for the head's end first: the line scan finds it, and a scan
 * that reaches the buffer's end means the head is not all here. Every read
 * is bounded, so the table lookups only ever see byte keys (a read past the
 * end gives undefined, a key the optimised loads would then have to handle
 * too).
 */
export function parseResponseHead(buf: Buffer, from: number, noBody: boolean): ResponseHeadResult {
  // Empty lines before the status line are skipped (RFC 9112 2.2): some servers end a body with an extra CRLF.
  while (buf[from] === 13 && buf[from + 1] === 10) from += 2;
  const last = buf.length - 1;
  if (from === last && buf[from] === 13) return undefined;
  // Status line: HTTP/1.[01] SP 3DIGIT [SP reason] CRLF; the reason may hold anything but controls.
  for (let k = 0; k < 7; k++) {
    if (from + k > last) return undefined;
    if (buf[from + k] !== HTTP1[k]) return bad(`status line ${JSON.stringify(buf.toString('latin1', from, Math.min(from + 20, buf.length)))} is not HTTP/1.x`, 'BadVersion');
  }
  if (from + 12 > last) return undefined;
  const minorByte = buf[from + 7];
  if ((minorByte !== 0x30 && minorByte !== 0x31) || buf[from + 8] !== 0x20) return bad('status line with a version other than HTTP/1.0 or 1.1', 'BadVersion');
  const s0 = buf[from + 9]!;
  // RFC 9110 15: three digits, 100 to 599.
  if (s0 < 0x31 || s0 > 0x35 || !isDigit(buf[from + 10]) || !isDigit(buf[from + 11])) return bad('status code is not three digits from 100 to 599');
  const status = (s0 - 0x30) * 100 + (buf[from + 10]! - 0x30) * 10 + (buf[from + 11]! - 0x30);
  let i = from + 12;
  if (buf[i] === 0x20) {
    i++;
    while (i < last && VCHAR[buf[i]!]) i++;
  }
  if (i >= last) return undefined;
  if (buf[i] !== 13 || buf[i + 1] !== 10) return bad('status line not ended by CRLF, or a control character in it');
  const lines: number[] = [];
  const lower: (string | undefined)[] = [];
  let length = -1;
  let te: string | undefined;
  let connection: string | undefined;
  // i is at the CR ending the previous line; the head ends where an empty line follows it.
  for (;;) {
    const start = i + 2;
    if (start >= last) return undefined;
    if (buf[start] === 13 && buf[start + 1] === 10) break;
    let p = start;
    while (p < last && TCHAR[buf[p]!]) p++;
    if (p >= last) return undefined;
    // No name (also a line starting with whitespace: obs-fold), or a name not ended by a colon.
    if (p === start || buf[p] !== 0x3a /* : */) return bad(`header line ${JSON.stringify(buf.toString('latin1', start, Math.min(start + 40, p + 1)))} has no token name and colon`);
    const colon = p;
    p++;
    while (p < last && VCHAR[buf[p]!]) p++;
    if (p >= last) return undefined;
    // The value stops at the line's CRLF, or at a byte that has no place in a head (bare CR, LF, control).
    if (buf[p] !== 13 || buf[p + 1] !== 10) return bad(`header ${buf.toString('latin1', start, colon)} has a control character in its value or a bare CR or LF`);
    const f = pushField(lines, buf, start, colon, p);
    const a = lines[f + 2]!;
    const b = lines[f + 3]!;
    const l = nameIn(WATCHED, buf, start, colon);
    if (l === 'content-length') {
      // Twice, even with the same value, or anything but plain digits: two readers could disagree on it (llhttp refuses the same).
      if (length >= 0) return bad('Content-Length appears more than once', 'MultipleContentLength');
      if (b - a > 15 || a === b) return bad('Content-Length is not a decimal length', 'BadContentLength');
      // Spaces around the digits only: llhttp refuses a tab after them, and what it refuses we refuse.
      for (let d = colon + 1; d < p; d++) if (buf[d] === 9) return bad('Content-Length with a tab in it', 'BadContentLength');
      length = 0;
      for (let d = a; d < b; d++) {
        if (!isDigit(buf[d])) return bad('Content-Length is not a decimal length', 'BadContentLength');
        length = length * 10 + buf[d]! - 0x30;
      }
    } else if (l === 'transfer-encoding') {
      // As for Content-Length: llhttp does not take a tab as whitespace around a coding (it reads "chunked<TAB>" to the close), so two readers could frame it differently.
      for (let d = colon + 1; d < p; d++) if (buf[d] === 9) return bad('Transfer-Encoding with a tab in it', 'BadTransferEncoding');
      const v = buf.toString('latin1', a, b);
      te = te === undefined ? v : `${te}, ${v}`;
    } else if (l === 'connection') {
      const v = buf.toString('latin1', a, b);
      connection = connection === undefined ? v : `${connection}, ${v}`;
    }
    lower.push(l);
    i = p;
  }
  const end = i + 4;
  if (end - from > MAX_HEAD_BYTES) return bad(`response head over ${MAX_HEAD_BYTES} bytes`, 'HeadTooLarge');
  // Both framings at once is the classic desync: refused for every status, as llhttp does.
  if (te !== undefined && length >= 0) return bad('both Transfer-Encoding and Content-Length are present', 'BothTeClPresent');
  // RFC 9112 6.3, in its order: no body for HEAD, 1xx, 204 and 304; chunked when it is the final coding; else to the close.
  const toClose = te !== undefined ? finalCoding(te) !== 'chunked' : length < 0;
  const bodiless = status < 200 || status === 204 || status === 304;
  let framing: ResponseFraming;
  if (noBody || bodiless) framing = NO_BODY;
  else if (te !== undefined) framing = toClose ? UNTIL_CLOSE : CHUNKED;
  else if (length >= 0) framing = { kind: 'length', length };
  else framing = UNTIL_CLOSE;
  const named = namedInConnection(connection);
  const minor = minorByte === 0x31 ? 1 : 0;
  // An answer to HEAD that a GET would have read to the close: the server may send a body anyway, so the connection is not reused (as Node's client does).
  const keepAlive = !(toClose && !bodiless) && (minor === 1 ? !named?.has('close') : named !== undefined && named.has('keep-alive'));
  return { head: new ResponseHead(status, minor, keepAlive, framing, buf, lines, lower, named), end };
}

/** What a ResponseReader reports, in this order per response: one head, its body in pieces, its end. */
export interface ResponseSink {
  /**
   * The final head (1xx other than 101 are read and dropped: the answer
   * follows). `whole`: a Content-Length body that came complete with its
   * head, a sub-array of that read; onBody is then not called for it.
   */
  onHead(head: ResponseHead, whole: Buffer | undefined): void;
  /** A piece of the body: a sub-array of a fed chunk. */
  onBody(piece: Buffer): void;
  /** The response ended; a chunked body's trailer fields (names and values alternating), if it had any. */
  onEnd(trailers: string[] | undefined): void;
}

const enum State {
  /** No response expected: only empty lines may come. */
  Idle,
  Head,
  Body,
  UntilClose,
  /** The connection is done with; whatever comes is dropped. */
  Stopped,
}

/**
 * Reads the responses of one connection, one per request sent (no
 * pipelining). The chunks fed must stay as they are (the reader hands out
 * and keeps sub-arrays of them, and of a head split over reads a copy).
 * Refusals are thrown as a FramingError; the caller closes the connection.
 */
export class ResponseReader {
  private state = State.Idle;
  private pending: Buffer | undefined;
  private body: BodyReader | undefined;
  private noBody = false;
  private readonly onData = (b: Buffer): void => this.sink.onBody(b);

  constructor(private readonly sink: ResponseSink) {}

  /** A request went out: its answer comes next. `head`: it was a HEAD request. */
  expect(head: boolean): void {
    this.state = State.Head;
    this.noBody = head;
    this.pending = undefined;
    this.body = undefined;
  }

  /** No more reading: the connection is being closed (maybe from inside a sink callback). */
  stop(): void {
    this.state = State.Stopped;
  }

  /** Some of a response has come and not all of it. */
  get midResponse(): boolean {
    return this.state === State.Body || this.state === State.UntilClose || (this.state === State.Head && this.pending !== undefined);
  }

  /**
   * Feeds one read. Returns false when it held bytes that belong to no
   * response (after the last one ended): the connection cannot be trusted.
   */
  feed(chunk: Buffer): boolean {
    let i = 0;
    while (i < chunk.length) {
      switch (this.state) {
        case State.Stopped:
          return true;
        case State.Idle:
          // An extra CRLF after a body is tolerated, as before a status line; anything else was never asked for.
          while (chunk[i] === 13 && chunk[i + 1] === 10) i += 2;
          return i >= chunk.length;
        case State.Head:
          i = this.readHead(chunk, i);
          break;
        case State.Body: {
          const body = this.body!;
          i += body.feed(i === 0 ? chunk : chunk.subarray(i), this.onData);
          if (body.done && this.state === State.Body) this.complete(body instanceof ChunkedReader && body.trailers.length ? body.trailers : undefined);
          break;
        }
        case State.UntilClose:
          this.sink.onBody(i === 0 ? chunk : chunk.subarray(i));
          return true;
      }
    }
    return true;
  }

  /** The upstream closed its side: that ends a close-delimited body, and is a refusal in the middle of any other. */
  end(): void {
    if (this.state === State.UntilClose) this.complete(undefined);
    else if (this.midResponse) throw new FramingError({ reason: 'BadHeader', detail: 'the upstream closed the connection in the middle of a response' });
  }

  /** Reads a head starting at chunk[i]; returns where reading goes on. */
  private readHead(chunk: Buffer, i: number): number {
    const held = this.pending;
    const buf = held ? Buffer.concat([held, i === 0 ? chunk : chunk.subarray(i)]) : chunk;
    const from = held ? 0 : i;
    const r = parseResponseHead(buf, from, this.noBody);
    if (r === undefined) {
      if (buf.length - from > MAX_HEAD_BYTES) throw new FramingError({ reason: 'HeadTooLarge', detail: `response head over ${MAX_HEAD_BYTES} bytes` });
      // A head split over reads is rare: keep a copy of what came (the chunk may be the caller's to reuse) and read it again whole.
      this.pending = held ? buf : Buffer.from(chunk.subarray(i));
      return chunk.length;
    }
    if ('problem' in r) throw new FramingError(r.problem);
    this.pending = undefined;
    const { head, end } = r;
    // Where the body starts in this chunk (a held head ended inside it).
    const at = held ? i + end - held.length : end;
    if (head.status < 200 && head.status !== 101) {
      // Interim: the real answer follows, unless the interim one said the connection ends (no answer can follow it then; llhttp refuses what does).
      if (!head.keepAlive) throw new FramingError({ reason: 'BadHeader', detail: `interim ${head.status} answer that closes the connection` });
      return at;
    }
    const f = head.framing;
    if (f.kind === 'length' && chunk.length - at >= f.length) {
      this.state = State.Idle;
      this.sink.onHead(head, chunk.subarray(at, at + f.length));
      if (this.state === State.Idle) this.sink.onEnd(undefined);
      return at + f.length;
    }
    this.sink.onHead(head, undefined);
    if (this.state !== State.Head) return at; // stopped by the sink
    if (f.kind === 'none') this.complete(undefined);
    else if (f.kind === 'close') this.state = State.UntilClose;
    else {
      this.body = f.kind === 'chunked' ? new ChunkedReader() : new LengthReader(f.length);
      this.state = State.Body;
    }
    return at;
  }

  private complete(trailers: string[] | undefined): void {
    this.state = State.Idle;
    this.body = undefined;
    this.sink.onEnd(trailers);
  }
}
