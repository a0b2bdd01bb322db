/**
 * Strict HTTP/1 framing, checked on the parsed head before anything is
 * forwarded. Node's llhttp (insecureHTTPParser off) already refuses most
 * smuggling shapes; what it lets through — a Transfer-Encoding that is not
 * exactly "chunked" (e.g. with obs-text like \xa0, or "xchunked"), repeated
 * framing headers, control characters — is refused here. A request whose
 * body length could be read two ways is never forwarded: the answer is 400
 * and the connection is closed (the next bytes cannot be trusted).
 */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// CTLs except HTAB; DEL. obs-text (\x80-\xff) is tolerated in ordinary values.
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const OBS_TEXT = /[\x80-\xff]/;

export interface FramingProblem {
  reason: 'BadHeader' | 'MultipleContentLength' | 'BadContentLength' | 'MultipleTransferEncoding' | 'BadTransferEncoding' | 'BothTeClPresent' | 'BadVersion';
  detail: string;
}

/** rawHeaders as Node gives them: [name, value, name, value, …] (latin1). */
export function checkHttp1Framing(rawHeaders: readonly string[], httpVersion: string): FramingProblem | undefined {
  let cl = 0;
  let te = 0;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    if (!TOKEN.test(name)) return { reason: 'BadHeader', detail: `header name ${JSON.stringify(name)} is not a token` };
    if (BAD_VALUE.test(value)) return { reason: 'BadHeader', detail: `header ${name} has a control character in its value` };
    const lower = name.toLowerCase();
    if (lower === 'content-length') {
      cl++;
      if (cl > 1) return { reason: 'MultipleContentLength', detail: 'Content-Length appears more than once' };
      if (!/^[0-9]{1,15}$/.test(value)) return { reason: 'BadContentLength', detail: `Content-Length ${JSON.stringify(value)} is not a decimal length` };
    } else if (lower === 'transfer-encoding') {
      te++;
      if (te > 1) return { reason: 'MultipleTransferEncoding', detail: 'Transfer-Encoding appears more than once' };
      // The only coding a proxy must understand to frame the body; anything
      // else (lists, unknown codings, look-alikes) is ambiguous to someone.
      if (OBS_TEXT.test(value) || value.toLowerCase() !== 'chunked') return { reason: 'BadTransferEncoding', detail: `Transfer-Encoding ${JSON.stringify(value)} is not "chunked"` };
    }
  }
  if (cl > 0 && te > 0) return { reason: 'BothTeClPresent', detail: 'both Transfer-Encoding and Content-Length are present' };
  if (te > 0 && httpVersion === '1.0') return { reason: 'BadTransferEncoding', detail: 'Transfer-Encoding in an HTTP/1.0 request' };
  if (httpVersion !== '1.1' && httpVersion !== '1.0') return { reason: 'BadVersion', detail: `HTTP/${httpVersion}` };
  return undefined;
}
