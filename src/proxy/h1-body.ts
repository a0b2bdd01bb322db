/**
 * The two body framings of HTTP/1.x (RFC 9112 6): a fixed Content-Length
 * and chunked. Shared by the request parser (h1-request.ts) and the
 * response reader (h1-response.ts), so both directions frame a body by the
 * same rules: chunked strictly (CRLF everywhere, hex sizes of at most 12
 * digits, extensions in their exact grammar, trailers without control
 * characters), because a reader that tolerates a bare LF or a junk size
 * line here disagrees with some other hop about where the body ends.
 */
import { BAD_VALUE, TOKEN, type FramingProblem } from './http1-guard.js';
import { withoutOws } from './ows.js';

const TCHARS = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
const QUOTED = '"(?:[\\t !#-\\[\\]-~\\x80-\\xff]|\\\\[\\t -~\\x80-\\xff])*"';
/**
 * A chunk-size line: hex digits, then extensions as RFC 9112 7.1.1 has
 * them (`;name` or `;name=value`, a token or a quoted string) with no
 * whitespace around their parts, as llhttp reads them. Lenient readings of
 * extensions (a quote or a bare LF taken as the end of the line) are where
 * chunked smuggling has hidden, so only the form every reader agrees on
 * passes.
 */
const CHUNK_SIZE = new RegExp(`^([0-9A-Fa-f]{1,12})(?:;${TCHARS}(?:=(?:${TCHARS}|${QUOTED}))?)*$`);
/** Longest chunk-size line (with extensions) or trailer section we hold. */
const MAX_LINE = 4096;

export class FramingError extends Error {
  constructor(readonly problem: FramingProblem) {
    super(`${problem.reason}: ${problem.detail}`);
  }
}

/**
 * Reads one message body from successive socket chunks, handing out
 * sub-arrays of them (no copy). feed() returns how many bytes of `chunk`
 * belonged to the body; after `done` the rest is the next message.
 */
export interface BodyReader {
  done: boolean;
  feed(chunk: Buffer, onData: (b: Buffer) => void): number;
}

export class LengthReader implements BodyReader {
  done: boolean;
  constructor(private remaining: number) {
    this.done = remaining === 0;
  }
  feed(chunk: Buffer, onData: (b: Buffer) => void): number {
    const n = Math.min(this.remaining, chunk.length);
    if (n > 0) onData(n === chunk.length ? chunk : chunk.subarray(0, n));
    this.remaining -= n;
    this.done = this.remaining === 0;
    return n;
  }
}

const enum Chunk {
  Size,
  Data,
  DataCr,
  DataLf,
  Trailers,
}

/**
 * chunked (RFC 9112 7.1), strictly: CRLF everywhere, hex sizes. The trailer
 * fields are checked and kept in `trailers` (names as received and values
 * without OWS, alternating): a request's are dropped, a response's passed on.
 */
export class ChunkedReader implements BodyReader {
  done = false;
  readonly trailers: string[] = [];
  private state = Chunk.Size;
  private line = '';
  private remaining = 0;

  feed(chunk: Buffer, onData: (b: Buffer) => void): number {
    let i = 0;
    while (i < chunk.length && !this.done) {
      switch (this.state) {
        case Chunk.Size:
        case Chunk.Trailers: {
          const nl = chunk.indexOf(10, i);
          const end = nl < 0 ? chunk.length : nl + 1;
          this.line += chunk.toString('latin1', i, end);
          i = end;
          if (this.line.length > MAX_LINE) throw new FramingError({ reason: 'BadChunk', detail: 'chunk size line or trailers too long' });
          if (nl >= 0) this.endOfLine();
          break;
        }
        case Chunk.Data: {
          const n = Math.min(this.remaining, chunk.length - i);
          onData(chunk.subarray(i, i + n));
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = Chunk.DataCr;
          break;
        }
        case Chunk.DataCr:
        case Chunk.DataLf: {
          const want = this.state === Chunk.DataCr ? 13 : 10;
          if (chunk[i] !== want) throw new FramingError({ reason: 'BadChunk', detail: 'chunk data not followed by CRLF' });
          i++;
          this.state = this.state === Chunk.DataCr ? Chunk.DataLf : Chunk.Size;
          break;
        }
      }
    }
    return i;
  }

  private endOfLine(): void {
    const line = this.line;
    if (line.length < 2 || line.charCodeAt(line.length - 2) !== 13) throw new FramingError({ reason: 'BadChunk', detail: 'bare LF in chunked framing' });
    if (this.state === Chunk.Size) {
      this.line = '';
      const m = CHUNK_SIZE.exec(line.slice(0, -2));
      if (!m) throw new FramingError({ reason: 'BadChunk', detail: `chunk size ${JSON.stringify(line.slice(0, 40))}` });
      this.remaining = parseInt(m[1]!, 16);
      this.state = this.remaining === 0 ? Chunk.Trailers : Chunk.Data;
      return;
    }
    // Trailers: the section ends with an empty line; each field must be a valid header.
    if (line.endsWith('\r\n\r\n') || line === '\r\n') {
      for (const f of line.split('\r\n')) {
        if (!f) continue;
        const colon = f.indexOf(':');
        if (colon <= 0 || !TOKEN.test(f.slice(0, colon)) || BAD_VALUE.test(f.slice(colon + 1)))
          throw new FramingError({ reason: 'BadChunk', detail: `trailer field ${JSON.stringify(f.slice(0, 40))}` });
        this.trailers.push(f.slice(0, colon), withoutOws(f.slice(colon + 1)));
      }
      this.done = true;
    }
  }
}
