/**
 * The upstream answer the proxy sees most: a whole HTTP/1.x response in one
 * read, framed by Content-Length. Parsed here in JavaScript, because each
 * trip through Node's llhttp binding (native call, header strings, a copy
 * of the body, three callbacks back into JavaScript) profiled at about 8%
 * of the proxy's CPU per request. Anything else — 1xx, 204/304, HEAD,
 * chunked or close-delimited bodies, a head or body split over reads, bytes
 * after the body, obs-fold, anything malformed — returns undefined and the
 * caller gives the same bytes to llhttp, which decides. So this accepts a
 * subset of what llhttp accepts, never more.
 */
import { BAD_VALUE, TOKEN } from './http1-guard.js';

export interface SimpleResponse {
  status: number;
  /** Names as received and values without surrounding whitespace, alternating (as llhttp gives them). */
  raw: string[];
  keepAlive: boolean;
  /** A sub-array of the chunk: no copy. */
  body: Buffer;
}

const STATUS_LINE = /^HTTP\/1\.([01]) ([2-5]\d\d)(?: [^\x00-\x08\x0a-\x1f\x7f]*)?$/;
const DIGITS = /^\d{1,15}$/;
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

function hasToken(list: string, token: string): boolean {
  const s = list.toLowerCase();
  if (s === token) return true;
  for (const part of s.split(',')) if (part.trim() === token) return true;
  return false;
}

export function parseSimpleResponse(chunk: Buffer): SimpleResponse | undefined {
  // The shortest head ("HTTP/1.1 200 \r\n\r\n") and not a continuation of something else.
  if (chunk.length < 16 || chunk[0] !== 0x48 /* H */) return undefined;
  const headEnd = chunk.indexOf(CRLFCRLF);
  if (headEnd < 0) return undefined;
  const head = chunk.toString('latin1', 0, headEnd);
  let eol = head.indexOf('\r\n');
  const m = STATUS_LINE.exec(eol < 0 ? head : head.slice(0, eol));
  if (!m) return undefined;
  const status = Number(m[2]);
  if (status === 204 || status === 304) return undefined;
  const minor = m[1] === '1' ? 1 : 0;
  const raw: string[] = [];
  let length = -1;
  let connection: string | undefined;
  while (eol >= 0) {
    const start = eol + 2;
    eol = head.indexOf('\r\n', start);
    const line = eol < 0 ? head.slice(start) : head.slice(start, eol);
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined; // also a line starting with whitespace (obs-fold) or with a bare CR/LF inside
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return undefined;
    let a = colon + 1;
    let b = line.length;
    while (a < b && (line.charCodeAt(a) === 32 || line.charCodeAt(a) === 9)) a++;
    while (b > a && (line.charCodeAt(b - 1) === 32 || line.charCodeAt(b - 1) === 9)) b--;
    const value = line.slice(a, b);
    if (BAD_VALUE.test(value)) return undefined;
    switch (name.length) {
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (length >= 0 || !DIGITS.test(value)) return undefined;
          length = Number(value);
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') return undefined;
        break;
      case 10:
        if (name.toLowerCase() === 'connection') connection = connection === undefined ? value : `${connection}, ${value}`;
        break;
    }
    raw.push(name, value);
  }
  if (length < 0 || chunk.length - headEnd - 4 !== length) return undefined;
  const keepAlive = minor === 1 ? !(connection !== undefined && hasToken(connection, 'close')) : connection !== undefined && hasToken(connection, 'keep-alive');
  return { status, raw, keepAlive, body: chunk.subarray(headEnd + 4) };
}
