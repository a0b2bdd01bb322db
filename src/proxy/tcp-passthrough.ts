/**
 * Anything that is not HTTP is passed through byte for byte to the service's
 * endpoint (or the original destination when it is not a mesh service). The
 * connection is handed to the native relay (the dial's `carry`: plain TCP,
 * or the mTLS tunnel for another node's backend): no byte of it enters
 * JavaScript. The promise settles when the connection ended.
 */
import type net from 'node:net';
import { channels } from './events.js';
import type { ConnContext } from './router.js';
import { endpointKey } from './dial.js';
import type { ProxyRuntime } from './runtime.js';
import { takeSocket } from '../relay/index.js';

export async function passThroughTcp(rt: ProxyRuntime, client: net.Socket, firstBytes: Buffer, ctx: ConnContext): Promise<void> {
  rt.tcpPassthrough++;
  const svc = rt.config.serviceAt(ctx.dst.ip, ctx.dst.port);
  const ep = svc ? rt.pickEndpoint(svc, new Set()) : ctx.dst;
  // Every dial the proxy runs with can carry a connection (plainDial, plainDialFrom, the tunnel's); one that cannot gets no pass-through.
  if (!ep || !rt.dial.carry) {
    rt.counters.count('no_endpoint');
    client.destroy();
    return;
  }
  let taken: { fd: number; pending: Buffer };
  try {
    taken = takeSocket(client);
  } catch {
    client.destroy();
    return;
  }
  const r = await rt.dial.carry(ep, ctx.client, taken.fd, taken.pending.length ? Buffer.concat([firstBytes, taken.pending]) : firstBytes);
  if (channels.tcp.hasSubscribers) channels.tcp.publish({ dst: ctx.dst, upstream: endpointKey(ep), client: ctx.client, bytesIn: r.bytesIn, bytesOut: r.bytesOut, durationMs: r.durationMs });
}
