/**
 * Socket reads into one reused buffer, handed to a callback: net's `onread`
 * path, without a Readable's push, 'data' event and a new 64 KiB buffer per
 * read. The proxy reads a few hundred bytes per read, so that machinery
 * was a large part of the cost of a read.
 *
 * net.connect takes `onread` (dial.ts passes it on); Node 20's net.Server
 * does not, so an accepted socket is switched here the way net.Socket's
 * constructor sets up `onread`: the socket's kBuffer / kBufferCb fields
 * (found by their symbols' descriptions) and the handle's useUserBuffer().
 * Those are Node internals, so the switch is checked on each socket and
 * refused (the socket keeps its 'data' events) where they are missing.
 */
import type net from 'node:net';

/**
 * The one buffer every switched socket reads into: safe to share because a
 * read is consumed before its callback returns, and nothing may keep a
 * reference to it (copy what must outlive the callback: `owned`).
 */
export const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** A copy of `b` that owns its bytes (from Buffer's shared pool when small). */
export function owned(b: Buffer): Buffer {
  const c = Buffer.allocUnsafe(b.length);
  b.copy(c);
  return c;
}

type OnRead = (n: number, buf: Uint8Array) => boolean;
interface Internals {
  kBuffer: symbol;
  kBufferCb: symbol;
}
interface UserBufferHandle {
  useUserBuffer?(buf: Uint8Array): void;
}

let internals: Internals | null | undefined;
function find(socket: net.Socket): Internals | null {
  if (internals !== undefined) return internals;
  const syms = Object.getOwnPropertySymbols(socket);
  const kBuffer = syms.find((s) => s.description === 'kBuffer');
  const kBufferCb = syms.find((s) => s.description === 'kBufferCb');
  internals = kBuffer && kBufferCb ? { kBuffer, kBufferCb } : null;
  return internals;
}

/**
 * From now on each read of the accepted `socket` lands in READ_BUFFER and
 * goes to `onBytes` (a view valid until it returns; return false to stop
 * reading, as pause() does). Bytes read before (queued in the Readable)
 * still come as 'data'. False: this Node cannot, nothing changed.
 */
export function readInto(socket: net.Socket, onBytes: (chunk: Buffer) => boolean): boolean {
  const k = find(socket);
  // Node internals (the handle and the stream's symbol-keyed fields) are not in its typings.
  const handle = (socket as unknown as { _handle: UserBufferHandle | null })._handle;
  if (!k || typeof handle?.useUserBuffer !== 'function') return false;
  const fields = socket as unknown as Record<symbol, unknown>;
  // Not already switched or made with onread: a second switch would stack a second listener on the handle.
  if (fields[k.kBuffer] !== null) return false;
  fields[k.kBufferCb] = ((n, buf) => onBytes((buf as Buffer).subarray(0, n))) satisfies OnRead;
  fields[k.kBuffer] = READ_BUFFER;
  handle.useUserBuffer(READ_BUFFER);
  return true;
}

/**
 * A switched socket goes back to 'data' events for whoever reads it next
 * (a WebSocket tunnel, the HTTP/2 server): each read is copied and pushed
 * into its Readable, whose backpressure stops the reads as before.
 */
export function readAsData(socket: net.Socket): void {
  const k = find(socket);
  // The stream's symbol-keyed internals, absent from Node's typings.
  const fields = socket as unknown as Record<symbol, unknown>;
  if (!k || fields[k.kBuffer] !== READ_BUFFER) return;
  fields[k.kBufferCb] = ((n, buf) => socket.push(owned((buf as Buffer).subarray(0, n)))) satisfies OnRead;
}
