/**
 * Decides from a connection's first bytes how to handle it: HTTP/2 with
 * prior knowledge (the client preface), HTTP/1.x (a request line), or plain
 * TCP to pass through untouched.
 */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'].map((m) => Buffer.from(m + ' '));

/** Longest first line we wait for before deciding it is not HTTP. */
const MAX_SNIFF = 8192;

export type Sniffed = 'h2' | 'http1' | 'tcp' | 'more';

export function sniff(buf: Buffer): Sniffed {
  const n = Math.min(buf.length, H2_PREFACE.length);
  if (buf.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return buf.length >= H2_PREFACE.length ? 'h2' : 'more';
  for (const m of METHODS) {
    const k = Math.min(buf.length, m.length);
    if (buf.subarray(0, k).equals(m.subarray(0, k))) return buf.length >= m.length ? 'http1' : 'more';
  }
  // An unusual method is still HTTP if the first line ends like a request
  // line; we hand it to the HTTP parser so a malformed one gets a 400 rather
  // than being passed through as opaque bytes.
  const nl = buf.indexOf(0x0a);
  if (nl >= 0) {
    const line = buf.subarray(0, nl).toString('latin1').replace(/\r$/, '');
    return /^\S+ \S+ HTTP\/\d\.\d$/.test(line) || / HTTP\/1\.[01]$/.test(line) ? 'http1' : 'tcp';
  }
  // A request line is printable text; binary means some other protocol.
  for (const b of buf) if (b < 0x09 || (b > 0x0d && b < 0x20)) return 'tcp';
  return buf.length < MAX_SNIFF ? 'more' : 'tcp';
}
