/**
 * Strict HTTP/1 framing rules, applied header by header while the request
 * parser (h1-request.ts) reads a request head, before anything is
 * forwarded, and the byte classes both head readers (h1-request.ts,
 * h1-response.ts) check every name and value byte against. A request whose
 * body length could be read two ways — a Transfer-Encoding that is not
 * exactly "chunked" (obs-text like \xa0, "xchunked", lists), repeated
 * framing headers, both framings at once, control characters — is never
 * forwarded: the answer is 400 and the connection is closed (the next bytes
 * cannot be trusted). Responses get the byte classes and the body readers
 * but framing rules of their own (h1-response.ts says which and why).
 */
/** Largest head (start line and header lines) either reader holds, as Node's default. */
export const MAX_HEAD_BYTES = 16 * 1024;

export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// CTLs except HTAB; DEL. obs-text (\x80-\xff) is tolerated in ordinary values.
export const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;

/** TOKEN as a byte table: 1 for a tchar (RFC 9110 5.6.2). */
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = TCHAR[c + 32] = 1;
/** The complement of BAD_VALUE as a byte table: 1 for HTAB, SP, visible ASCII and obs-text. */
export const VCHAR = new Uint8Array(256);
VCHAR[9] = 1;
for (let c = 0x20; c <= 0xff; c++) if (c !== 0x7f) VCHAR[c] = 1;

const isOws = (c: number | undefined): boolean => c === 32 || c === 9;

/**
 * Both head readers keep a head as offsets into its bytes, four per field:
 * name start, colon, value start and end (surrounding OWS left out). Adds
 * the field whose line runs from `start` to `end` (its CR); returns where
 * its four offsets start.
 */
export function pushField(fields: number[], buf: Buffer, start: number, colon: number, end: number): number {
  let a = colon + 1;
  let b = end;
  while (a < b && isOws(buf[a])) a++;
  while (b > a && isOws(buf[b - 1])) b--;
  return fields.push(start, colon, a, b) - 4;
}

/** Such fields as strings: names as received and values, alternating (as IncomingMessage's rawHeaders). */
export function rawFields(buf: Buffer, fields: readonly number[]): string[] {
  const out: string[] = [];
  for (let j = 0; j < fields.length; j += 4) out.push(buf.toString('latin1', fields[j], fields[j + 1]), buf.toString('latin1', fields[j + 2], fields[j + 3]));
  return out;
}

/** Lower-case field names grouped by length, for nameIn(). */
export type NameTable = ReadonlyMap<number, readonly string[]>;

export function nameTable(names: Iterable<string>): NameTable {
  const t = new Map<number, string[]>();
  for (const n of names) {
    const list = t.get(n.length) ?? [];
    if (!list.includes(n)) list.push(n);
    t.set(n.length, list);
  }
  return t;
}

/**
 * The name of `table` that buf[start, end) spells in any case, as the
 * table's own string (so no string is made per field), or undefined. The
 * bytes must already be tchars: over those, `| 0x20` folds exactly A-Z onto
 * a-z and leaves '-' and digits as they are.
 */
export function nameIn(table: NameTable, buf: Buffer, start: number, end: number): string | undefined {
  const list = table.get(end - start);
  if (list === undefined) return undefined;
  next: for (const name of list) {
    for (let k = 0; k < name.length; k++) if ((buf[start + k]! | 0x20) !== name.charCodeAt(k)) continue next;
    return name;
  }
  return undefined;
}
const OBS_TEXT = /[\x80-\xff]/;
const DECIMAL = /^[0-9]{1,15}$/;

export type FramingReason =
  | 'BadHeader'
  | 'MultipleContentLength'
  | 'BadContentLength'
  | 'MultipleTransferEncoding'
  | 'BadTransferEncoding'
  | 'BothTeClPresent'
  | 'BadVersion'
  | 'BadMethod'
  | 'BadUri'
  | 'BadHost'
  | 'BadChunk'
  | 'HeadTooLarge';

export interface FramingProblem {
  reason: FramingReason;
  detail: string;
}

/** What the framing headers of one message said so far. */
export interface FramingTally {
  contentLength: number;
  clCount: number;
  teCount: number;
}

export const newTally = (): FramingTally => ({ contentLength: 0, clCount: 0, teCount: 0 });

/**
 * One header field whose name (lower-case) and value (OWS removed) the
 * caller already checked byte by byte against TCHAR and VCHAR.
 */
export function checkHeader(lower: string, value: string, t: FramingTally): FramingProblem | undefined {
  if (lower === 'content-length') {
    if (++t.clCount > 1) return { reason: 'MultipleContentLength', detail: 'Content-Length appears more than once' };
    if (!DECIMAL.test(value)) return { reason: 'BadContentLength', detail: `Content-Length ${JSON.stringify(value)} is not a decimal length` };
    t.contentLength = Number(value);
  } else if (lower === 'transfer-encoding') {
    if (++t.teCount > 1) return { reason: 'MultipleTransferEncoding', detail: 'Transfer-Encoding appears more than once' };
    // The only coding a proxy must understand to frame the body; anything
    // else (lists, unknown codings, look-alikes) is ambiguous to someone.
    if (OBS_TEXT.test(value) || value.toLowerCase() !== 'chunked') return { reason: 'BadTransferEncoding', detail: `Transfer-Encoding ${JSON.stringify(value)} is not "chunked"` };
  }
  return undefined;
}

/** After the last header: the combinations that are wrong as a whole. */
export function checkFraming(t: FramingTally, minor: number): FramingProblem | undefined {
  if (t.clCount > 0 && t.teCount > 0) return { reason: 'BothTeClPresent', detail: 'both Transfer-Encoding and Content-Length are present' };
  if (t.teCount > 0 && minor === 0) return { reason: 'BadTransferEncoding', detail: 'Transfer-Encoding in an HTTP/1.0 request' };
  return undefined;
}
