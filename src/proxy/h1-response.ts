/**
 * The upstream answer the proxy sees most: a whole HTTP/1.x response in one
 * read, framed by Content-Length. Read here in JavaScript, on the bytes,
 * because each trip through Node's llhttp binding (native call, header
 * strings, a copy of the body, three callbacks back into JavaScript)
 * profiled at about 8% of the proxy's CPU per request, and turning the head
 * into strings and back cost as much again. One scan over the head checks
 * every byte against tables (token names, values without controls, CRLF
 * line ends) and notes where each line is; the lines to forward are then
 * copied as bytes (HeadBytes). Strings are made only for the few fields
 * that decide framing, and for the whole head only if someone asks for it
 * (`raw`, for response header rules).
 *
 * Anything else — 1xx, 204/304, HEAD, chunked or close-delimited bodies, a
 * head or body split over reads, bytes after the body, obs-fold, anything
 * malformed — returns undefined and the caller gives the same bytes to
 * llhttp, which decides. So this accepts a subset of what llhttp accepts,
 * never more.
 */
import { dropsField, HOP_BY_HOP, namedInConnection } from './hop-by-hop.js';
import { nameIn, nameTable, pushField, rawFields, TCHAR, VCHAR } from './http1-guard.js';

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

const HTTP1 = Buffer.from('HTTP/1.', 'latin1');

/** The names acted on (compared as bytes, never made into strings): hop-by-hop fields and those framing reads. */
const WATCHED = nameTable([...HOP_BY_HOP, 'content-length', 'date']);

export class SimpleResponse implements HeadBytes {
  /** Offsets into `lines` of the lines to forward. */
  private readonly keep: number[] = [];
  size = 0;
  hasLength = false;
  hasDate = false;
  /** A sub-array of `src`: no copy. */
  readonly body: Buffer;
  private names: string[] | undefined;

  constructor(
    readonly status: number,
    readonly keepAlive: boolean,
    private readonly src: Buffer,
    /** Per header line: start, colon, value start, value end (OWS excluded)… */
    private readonly lines: number[],
    /** …and its name when it is one of WATCHED. */
    lower: (string | undefined)[],
    /** Where the head's closing CRLFCRLF starts. */
    headEnd: number,
    named: ReadonlySet<string> | undefined,
  ) {
    this.body = src.subarray(headEnd + 4);
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

  /** Names as received and values without surrounding whitespace, alternating (as llhttp gives them). */
  get raw(): string[] {
    return (this.names ??= rawFields(this.src, this.lines));
  }
}

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;

export function parseSimpleResponse(chunk: Buffer): SimpleResponse | undefined {
  // The shortest head ("HTTP/1.1 200 \r\n\r\n") and not a continuation of something else.
  if (chunk.length < 16 || chunk[0] !== 0x48 /* H */) return undefined;
  // No search for the head's end first: the line scan finds it, and a scan
  // that reaches the chunk's end means the head is not all here. Every read
  // is bounded, so the table lookups only ever see byte keys (a read past
  // the end gives undefined, a key the optimised loads would then have to
  // handle too); no slowdown after cut heads was measurable either way.
  const last = chunk.length - 1;
  // Status line: HTTP/1.[01] [2-5]dd[ reason]
  for (let k = 0; k < 7; k++) if (chunk[k] !== HTTP1[k]) return undefined;
  const minorByte = chunk[7];
  if ((minorByte !== 0x30 && minorByte !== 0x31) || chunk[8] !== 0x20) return undefined;
  const s0 = chunk[9]!;
  if (s0 < 0x32 || s0 > 0x35 || !isDigit(chunk[10]) || !isDigit(chunk[11])) return undefined;
  const status = (s0 - 0x30) * 100 + (chunk[10]! - 0x30) * 10 + (chunk[11]! - 0x30);
  if (status === 204 || status === 304) return undefined;
  let i = 12;
  if (chunk[i] === 0x20) {
    i++;
    while (i < last && VCHAR[chunk[i]!]) i++;
  }
  if (i >= last || chunk[i] !== 13 || chunk[i + 1] !== 10) return undefined;
  const lines: number[] = [];
  const lower: (string | undefined)[] = [];
  let length = -1;
  let connection: string | undefined;
  // i is at the CR ending the previous line; the head ends where an empty line follows it.
  for (;;) {
    const start = i + 2;
    if (start >= last) return undefined;
    if (chunk[start] === 13 && chunk[start + 1] === 10) break;
    let p = start;
    while (p < last && TCHAR[chunk[p]!]) p++;
    // No name (also a line starting with whitespace: obs-fold), or a name not ended by a colon.
    if (p === start || chunk[p] !== 0x3a /* : */) return undefined;
    const colon = p;
    p++;
    while (p < last && VCHAR[chunk[p]!]) p++;
    // The value stops at the line's CRLF, or at a byte that has no place in a head (bare CR, LF, control).
    if (p >= last || chunk[p] !== 13 || chunk[p + 1] !== 10) return undefined;
    const f = pushField(lines, chunk, start, colon, p);
    const a = lines[f + 2]!;
    const b = lines[f + 3]!;
    const l = nameIn(WATCHED, chunk, start, colon);
    if (l !== undefined) {
      if (l === 'content-length') {
        if (length >= 0 || b - a > 15 || a === b) return undefined;
        length = 0;
        for (let d = a; d < b; d++) {
          if (!isDigit(chunk[d])) return undefined;
          length = length * 10 + chunk[d]! - 0x30;
        }
      } else if (l === 'transfer-encoding') return undefined;
      else if (l === 'connection') {
        const v = chunk.toString('latin1', a, b);
        connection = connection === undefined ? v : `${connection}, ${v}`;
      }
    }
    lower.push(l);
    i = p;
  }
  const headEnd = i;
  if (length < 0 || chunk.length - headEnd - 4 !== length) return undefined;
  const named = namedInConnection(connection);
  const keepAlive = minorByte === 0x31 ? !named?.has('close') : named !== undefined && named.has('keep-alive');
  return new SimpleResponse(status, keepAlive, chunk, lines, lower, headEnd, named);
}
