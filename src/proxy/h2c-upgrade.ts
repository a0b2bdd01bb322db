/**
 * HTTP/2 over cleartext via "Upgrade: h2c" (RFC 7540 3.2). Node's HTTP/2
 * server has no h2c upgrade, so after answering 101 we turn the HTTP/1.1
 * request into what an h2 client would have sent on stream 1 — a HEADERS
 * frame (HPACK literals, which leave the decoder's table alone) and DATA
 * frames for the body — and splice them in right after the client's
 * preface and SETTINGS. The HTTP/2 server then sees an ordinary stream 1.
 */
import type { Socket } from 'node:net';
import type { H1Head } from './h1-request.js';
import { H2_PREFACE } from './sniff.js';

/** Largest body we carry over an upgrade: the h2 default initial window. */
export const MAX_H2C_UPGRADE_BODY = 65_535;
const MAX_FRAME = 16_384;
const DROP = new Set(['connection', 'upgrade', 'http2-settings', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'host', 'te']);

function hpackInt(n: number, out: number[]): void {
  if (n < 127) {
    out.push(n);
    return;
  }
  out.push(127);
  n -= 127;
  while (n >= 128) {
    out.push((n % 128) + 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
}

function literal(name: string, value: string, out: number[]): void {
  out.push(0x00); // literal header field without indexing, new name
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  hpackInt(n.length, out);
  out.push(...n);
  hpackInt(v.length, out);
  out.push(...v);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

/** The request as stream 1: HEADERS (+ DATA). Throws when it cannot fit one frame. */
export function stream1Frames(req: H1Head, body: Buffer): Buffer {
  const block: number[] = [];
  literal(':method', req.method, block);
  literal(':scheme', 'http', block);
  literal(':path', req.url, block);
  literal(':authority', req.headers.host ?? '', block);
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (!DROP.has(name)) literal(name, req.rawHeaders[i + 1]!, block);
  }
  if (block.length > MAX_FRAME) throw new Error('request headers too large for an h2c upgrade');
  const frames = [frame(0x1, 0x4 | (body.length === 0 ? 0x1 : 0), 1, Buffer.from(block))];
  for (let off = 0; off < body.length; off += MAX_FRAME) {
    const chunk = body.subarray(off, off + MAX_FRAME);
    frames.push(frame(0x0, off + MAX_FRAME >= body.length ? 0x1 : 0, 1, chunk));
  }
  return Buffer.concat(frames);
}

/** Reads exactly n bytes (starting with `pending`), leaving the socket paused. */
function readExactly(socket: Socket, pending: Buffer, n: number, timeoutMs: number): Promise<{ bytes: Buffer; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = pending;
    const check = (): boolean => {
      if (buf.length < n) return false;
      cleanup();
      socket.pause();
      resolve({ bytes: buf.subarray(0, n), rest: buf.subarray(n) });
      return true;
    };
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      check();
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error('connection closed during h2c upgrade'));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error('timed out during h2c upgrade'));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
    };
    if (check()) return;
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.resume();
  });
}

/**
 * Performs the upgrade on `socket` and returns the bytes the HTTP/2 server
 * must read first (unshift them, then hand the socket over).
 */
export async function upgradeToH2c(req: H1Head, socket: Socket, head: Buffer, timeoutMs: number): Promise<Buffer> {
  const len = req.framing.kind === 'length' ? req.framing.length : 0;
  const { bytes: body, rest } = await readExactly(socket, head, len, timeoutMs);
  socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
  const pre = await readExactly(socket, rest, H2_PREFACE.length + 9, timeoutMs);
  if (!pre.bytes.subarray(0, H2_PREFACE.length).equals(H2_PREFACE)) throw new Error('no HTTP/2 preface after 101');
  const settingsLen = pre.bytes.readUIntBE(H2_PREFACE.length, 3);
  const settings = await readExactly(socket, pre.rest, settingsLen, timeoutMs);
  return Buffer.concat([pre.bytes, settings.bytes, stream1Frames(req, body), settings.rest]);
}
