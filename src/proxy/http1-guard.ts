/**
 * Strict HTTP/1 framing rules, applied header by header while the proxy's
 * own parser (h1-parser.ts) reads a request head, before anything is
 * forwarded. A request whose body length could be read two ways — a
 * Transfer-Encoding that is not exactly "chunked" (obs-text like \xa0,
 * "xchunked", lists), repeated framing headers, both framings at once,
 * control characters — is never forwarded: the answer is 400 and the
 * connection is closed (the next bytes cannot be trusted).
 */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// CTLs except HTAB; DEL. obs-text (\x80-\xff) is tolerated in ordinary values.
export const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
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
 * One header line, name as received and value with its OWS removed. The
 * lower-case name is passed in because the caller needs it anyway.
 */
export function checkHeader(name: string, lower: string, value: string, t: FramingTally): FramingProblem | undefined {
  if (!TOKEN.test(name)) return { reason: 'BadHeader', detail: `header name ${JSON.stringify(name)} is not a token` };
  if (BAD_VALUE.test(value)) return { reason: 'BadHeader', detail: `header ${name} has a control character in its value` };
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
