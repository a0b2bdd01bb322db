/**
 * Closing an HTTP/2 session without failing a request: a first GOAWAY that
 * names the highest stream id there is tells the peer to open no new
 * streams here while it still accepts those already on the wire; the real
 * GOAWAY (session.close(): the streams in flight finish, then the session
 * closes) follows one round trip later. A single GOAWAY would refuse the
 * streams the peer sent before it saw ours.
 *
 * What it cannot do with Node's API: nghttp2 ignores any stream that arrives
 * after a GOAWAY went out (Node's goaway() is not nghttp2's shutdown notice),
 * and the real GOAWAY then tells the peer those streams were never processed:
 * REFUSED_STREAM, which HTTP/2 clients retry (RFC 9113, 8.7). The window is
 * the time between our first GOAWAY leaving and the peer reading it; it grows
 * when this process's event loop is held up (h2-drain.test.ts shows it).
 */
import http2 from 'node:http2';

const MAX_STREAM_ID = 2 ** 31 - 1;
/** Longer than any round trip between two nodes of a lab or a cluster. */
export const GOAWAY_GRACE_MS = 1000;

export function drainSession(session: http2.Http2Session, graceMs = GOAWAY_GRACE_MS): void {
  if (session.closed || session.destroyed) return;
  try {
    session.goaway(http2.constants.NGHTTP2_NO_ERROR, MAX_STREAM_ID);
  } catch {
    // Already going away.
  }
  setTimeout(() => { if (!session.closed && !session.destroyed) session.close(); }, graceMs).unref();
}
