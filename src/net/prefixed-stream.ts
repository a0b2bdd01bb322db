/**
 * A Duplex over a socket that first yields bytes we already read. Needed for
 * HTTP/2: Node's native h2 session reads straight from the socket's handle,
 * so bytes given back with unshift() (the sniffed preface) would be lost;
 * over a JS Duplex Node feeds the session from the stream instead. What the
 * server session writes passes through its ShutdownNotice, which can put a
 * graceful GOAWAY between two of its frames (h2-drain.ts).
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { ShutdownNotice } from './h2-drain.js';

export function withPrefix(socket: Socket, prefix: Buffer): { stream: Duplex; notice: ShutdownNotice } {
  const notice = new ShutdownNotice((chunk, cb) => void socket.write(chunk, cb));
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      notice.pass(chunk, cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  d.on('error', () => {});
  if (prefix.length) d.push(prefix);
  socket.on('data', (c: Buffer) => {
    if (!d.push(c)) socket.pause();
  });
  socket.on('end', () => d.push(null));
  socket.on('close', () => d.destroy());
  return { stream: d, notice };
}
