/**
 * Anything that is not HTTP is passed through byte for byte to the service's
 * endpoint (or the original destination when it is not a mesh service).
 */
import net from 'node:net';
import { channels } from './events.js';
import type { ConnContext } from './router.js';
import { endpointKey } from './dial.js';
import type { ProxyRuntime } from './runtime.js';

export function passThroughTcp(rt: ProxyRuntime, client: net.Socket, firstBytes: Buffer, ctx: ConnContext): void {
  rt.tcpPassthrough++;
  const svc = rt.config.serviceAt(ctx.dst.ip, ctx.dst.port);
  const ep = svc ? rt.pickEndpoint(svc, new Set()) : ctx.dst;
  if (!ep) {
    rt.counters.count('no_endpoint');
    client.destroy();
    return;
  }
  const t0 = performance.now();
  const upstream = rt.dial(ep, ctx.client);
  upstream.setNoDelay?.(true);
  let bytesIn = firstBytes.length;
  let bytesOut = 0;
  client.on('data', (d: Buffer) => (bytesIn += d.length));
  upstream.on('data', (d: Buffer) => (bytesOut += d.length));
  // A failure on either side ends both: half a tunnel is no use to anyone.
  upstream.on('error', () => client.destroy());
  client.on('error', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  client.on('close', () => {
    upstream.destroy();
    if (channels.tcp.hasSubscribers) channels.tcp.publish({ dst: ctx.dst, upstream: endpointKey(ep), client: ctx.client, bytesIn, bytesOut, durationMs: performance.now() - t0 });
  });
  if (firstBytes.length) upstream.write(firstBytes);
  client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
}
