/**
 * The one way the proxy opens a byte stream to a backend, whatever speaks
 * over it (HTTP/1.1, HTTP/2, TCP pass-through, WebSocket). The agent swaps
 * it to carry connections to other nodes through the mTLS tunnel; by
 * default it is plain TCP.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { relayPipe, type Carried } from '../relay/index.js';
import type { Endpoint } from './types.js';

/** The caller a connection is opened for; the tunnel vouches for its identity to the receiving node. */
export interface Caller {
  identity: string;
  namespace: string;
  /** The calling workload's address, when known: the receiving node judges its NetworkPolicy against it. */
  ip?: string;
}

/**
 * A stream to the backend. It emits 'connect' once bytes reach the backend
 * (a net.Socket does; a tunnel stream when the peer node accepted it): until
 * then a failure means the request never left, so it is safe to retry.
 * Bytes written before 'connect' are buffered.
 */
export type UpstreamStream = Duplex & { setNoDelay?(noDelay?: boolean): unknown; ref?(): unknown; unref?(): unknown };
/**
 * Where the caller wants a TCP connection's bytes: net's `onread` (each read
 * lands in one reused buffer and goes to a callback, without a Readable's
 * 'data' event and a new buffer per read). A dial that opens a net.Socket
 * passes it on; one whose stream is no socket (the tunnel) cannot, and the
 * caller then reads 'data': `readsInto` tells which happened.
 */
export type ReadInto = net.OnReadOpts;

export type Dial = ((ep: Endpoint, caller: Caller, into?: ReadInto) => UpstreamStream) & {
  /** True when a connection to ep speaks for its caller (the tunnel); a plain TCP connection serves any caller. */
  speaksForCaller?: (ep: Endpoint) => boolean;
  /**
   * Carries a whole connection to ep in the native relay: the caller's
   * descriptor (the relay's from then on) and the bytes already read from
   * it. For TCP pass-through, whose bytes need no L7 decision and so never
   * enter JavaScript. Resolves when the connection ended.
   */
  carry?: (ep: Endpoint, caller: Caller, fd: number, head: Buffer) => Promise<Carried>;
};

const readingInto = new WeakSet<object>();

/** True when `stream` was opened with a ReadInto: its bytes go to that callback, never to 'data'. */
export const readsInto = (stream: object): boolean => readingInto.has(stream);

function connect(opts: net.TcpNetConnectOpts, into: ReadInto | undefined): net.Socket {
  if (!into) return net.connect(opts);
  const s = net.connect({ ...opts, onread: into });
  readingInto.add(s);
  return s;
}

export const plainDial: Dial = Object.assign((ep: Endpoint, _caller: Caller, into?: ReadInto) => connect({ host: ep.ip, port: ep.port }, into), {
  carry: (ep: Endpoint, _caller: Caller, fd: number, head: Buffer) => relayPipe(fd, ep.ip, ep.port, undefined, head),
});

/** Plain TCP from a chosen local address (the agent's proxy: its pod-subnet gateway, an address other nodes' workloads answer). */
export const plainDialFrom = (localAddress: string): Dial =>
  Object.assign((ep: Endpoint, _caller: Caller, into?: ReadInto) => connect({ host: ep.ip, port: ep.port, localAddress }, into), {
    carry: (ep: Endpoint, _caller: Caller, fd: number, head: Buffer) => relayPipe(fd, ep.ip, ep.port, localAddress, head),
  });

/** An endpoint's "ip:port": kept on compiled endpoints, built for others (an original destination). */
export const endpointKey = (e: Endpoint): string => e.key ?? `${e.ip}:${e.port}`;

/**
 * The pool key of an upstream connection: the backend, and the caller too
 * when the connection speaks for it (through the tunnel it carries the
 * identity and address of the caller it was opened for, so it must never
 * carry another caller's request). Plain connections are shared by every
 * caller, as before the tunnel.
 */
export const dialKey = (dial: Dial, ep: Endpoint, caller: Caller): string =>
  dial.speaksForCaller?.(ep) ? `${endpointKey(ep)}|${caller.identity}|${caller.ip ?? ''}` : endpointKey(ep);
