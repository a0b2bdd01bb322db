/**
 * One HTTP/1 response read two ways, for the tests and the fuzz target of
 * the proxy's response reader (src/proxy/h1-response.ts): by that reader,
 * fed in pieces, and by Node's llhttp, the parser Node's own client uses.
 * llhttp is reached through the legacy `_http_common` module; it is the
 * reference here and never a path of the proxy.
 */
import { createRequire } from 'node:module';
import { FramingError } from '../../src/proxy/h1-body.js';
import { ResponseReader, type ResponseHead } from '../../src/proxy/h1-response.js';

interface Llhttp {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(b: Buffer): number | Error;
  finish(): number | Error | undefined;
  close(): void;
  [k: number]: unknown;
}
const { HTTPParser } = createRequire(import.meta.url)('_http_common') as {
  HTTPParser: { new (): Llhttp; RESPONSE: number; kOnHeaders: number; kOnHeadersComplete: number; kOnBody: number; kOnMessageComplete: number };
};

/** What one response came to: its final head, body and trailers, and whether it ended. */
export interface Read {
  status: number;
  raw: string[];
  keepAlive: boolean;
  body: string;
  trailers: string[];
  complete: boolean;
}

/** llhttp's reading of the answer to one request (`head`: a HEAD request), the connection closed after `bytes`. */
export function llhttp(bytes: Buffer, head = false): Read | Error {
  const p = new HTTPParser();
  p.initialize(HTTPParser.RESPONSE, {}, 0, 0);
  const out: Read = { status: 0, raw: [], keepAlive: false, body: '', trailers: [], complete: false };
  p[HTTPParser.kOnHeaders] = (h: string[]) => void out.trailers.push(...h);
  p[HTTPParser.kOnHeadersComplete] = (_a: number, _b: number, h: string[], _m: unknown, _u: unknown, status: number, _s: unknown, _up: boolean, ka: boolean) => {
    Object.assign(out, { status, raw: h, keepAlive: ka, complete: false });
    return head ? 1 : 0;
  };
  p[HTTPParser.kOnBody] = (b: Buffer) => void (out.body += b.toString('latin1'));
  p[HTTPParser.kOnMessageComplete] = () => void (out.status >= 200 && (out.complete = true));
  const r = p.execute(bytes);
  const f = r instanceof Error || out.complete ? undefined : p.finish();
  p.close();
  return r instanceof Error ? r : f instanceof Error ? f : out;
}

/**
 * The reader's reading of the same, the bytes fed in the pieces `cuts`
 * makes, then the close. `whole`: the body came with the head; `stray`:
 * bytes came after the answer (the reader stops there).
 */
export function ours(bytes: Buffer, cuts: number[] = [], head = false): (Read & { whole: boolean; stray: boolean }) | FramingError {
  const out = { status: 0, raw: [] as string[], keepAlive: false, body: '', trailers: [] as string[], complete: false, whole: false, stray: false };
  const reader = new ResponseReader({
    onHead(h: ResponseHead, whole: Buffer | undefined) {
      Object.assign(out, { status: h.status, raw: h.raw, keepAlive: h.keepAlive, whole: whole !== undefined, body: whole?.toString('latin1') ?? '' });
    },
    onBody: (b) => void (out.body += b.toString('latin1')),
    onEnd(t) {
      out.complete = true;
      out.trailers = t ?? [];
    },
  });
  reader.expect(head);
  try {
    let at = 0;
    for (const c of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((x, y) => x - y), bytes.length]) {
      // Each piece in a buffer of its own, as each read is.
      const piece = Buffer.from(bytes.subarray(at, c));
      at = c;
      if (!piece.length) continue;
      if (!reader.feed(piece)) {
        out.stray = true;
        return out;
      }
    }
    if (!out.complete) reader.end();
  } catch (e) {
    if (e instanceof FramingError) return e;
    throw e;
  }
  return out;
}

/** The reading without what only the reader reports. */
export const without = ({ whole: _w, stray: _s, ...r }: Read & { whole: boolean; stray: boolean }): Read => r;
