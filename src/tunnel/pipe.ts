/**
 * Bytes both ways between an HTTP/2 stream and a TCP socket, with
 * backpressure, half-close carried across (the end of one side's input ends
 * the other side's output: END_STREAM <-> FIN), and one callback when both
 * are done or either failed. A failure on one side resets the other: half a
 * connection is no use to anyone.
 */
import type { Duplex } from 'node:stream';

export interface PipeResult {
  aToB: number;
  bToA: number;
  error?: string;
}

export function pipeStream(a: Duplex, b: Duplex, done: (r: PipeResult) => void): void {
  const r: PipeResult = { aToB: 0, bToA: 0 };
  let finished = false;
  let closed = 0;
  const finish = () => { if (!finished) { finished = true; done(r); } };
  const fail = (side: string) => (e: Error) => {
    r.error ??= `${side}: ${(e as NodeJS.ErrnoException).code ?? e.message}`;
    a.destroy();
    b.destroy();
  };
  a.on('error', fail('a'));
  b.on('error', fail('b'));
  // A side that closes before both directions ended (a reset, not a half-close) takes the other with it.
  const onClose = (self: Duplex, other: Duplex) => () => {
    if (!self.readableEnded || !other.readableEnded) other.destroy();
    if (++closed === 2) finish();
  };
  a.once('close', onClose(a, b));
  b.once('close', onClose(b, a));
  relay(a, b, (n) => { r.aToB += n; });
  relay(b, a, (n) => { r.bToA += n; });
}

/**
 * What Readable#pipe does for us, in one 'data' listener that also counts:
 * pipe plus a counting listener made two listeners per chunk, and Node's
 * emit copies the listener array for every event once there are two. A
 * stream the caller paused is resumed here, as pipe would.
 */
function relay(from: Duplex, to: Duplex, count: (n: number) => void): void {
  let waiting = false;
  const resume = () => { waiting = false; from.resume(); };
  from.on('data', (d: Buffer) => {
    count(d.length);
    if (!to.write(d) && !waiting) {
      waiting = true;
      from.pause();
      to.once('drain', resume);
    }
  });
  from.once('end', () => to.end());
  from.resume();
}
