/**
 * WebSocket (and any other HTTP/1.1 Upgrade): routed and authorized like a
 * request, then the head is replayed to the chosen endpoint and bytes flow
 * both ways untouched — the backend's 101 included.
 */
import net from 'node:net';
import { channels } from './events.js';
import type { H1Head } from './h1-request.js';
import { decide } from './plan.js';
import { rejection, type Rejection } from './responses.js';
import type { RequestFacts } from './route-match.js';
import type { ConnContext } from './router.js';
import type { ProxyRuntime } from './runtime.js';
import { formatTraceparent, startRequestSpan } from './tracing.js';

export function writeRawRejection(socket: net.Socket, r: Rejection): void {
  const head = [`HTTP/1.1 ${r.status} ${r.reason}`, ...Object.entries(r.headers).map(([k, v]) => `${k}: ${v}`), `content-length: ${Buffer.byteLength(r.body)}`, 'connection: close', '', ''].join('\r\n');
  socket.end(head + r.body);
}

export function tunnelUpgrade(rt: ProxyRuntime, req: H1Head, client: net.Socket, head: Buffer, ctx: ConnContext): void {
  const url = req.url;
  const q = url.indexOf('?');
  const facts: RequestFacts = {
    method: req.method,
    path: q >= 0 ? url.slice(0, q) : url,
    query: new URLSearchParams(q >= 0 ? url.slice(q) : ''),
    headers: req.headers,
    host: req.headers.host ?? '',
    grpc: false,
  };
  const plan = decide(rt.config, ctx.dst, ctx.client, facts, q >= 0 ? url.slice(q) : '', rt.random);
  if (plan.kind === 'reject') {
    if (plan.denied && channels.denied.hasSubscribers) channels.denied.publish({ ...plan.denied, identity: ctx.client.identity, namespace: ctx.client.namespace, method: facts.method, path: facts.path, service: plan.service?.key });
    writeRawRejection(client, rejection(plan.reason, { grpc: false, detail: plan.detail, extraHeaders: plan.headers, service: plan.service?.key }, rt.counters));
    return;
  }
  if (plan.kind === 'redirect') {
    client.end(`HTTP/1.1 ${plan.status} Redirect\r\nlocation: ${plan.location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    return;
  }
  const ep = plan.direct ?? (plan.backend ? rt.pickEndpoint(plan.backend, new Set()) : undefined);
  if (!ep) {
    writeRawRejection(client, rejection('no_endpoint', { grpc: false, detail: `no endpoint for ${plan.backend?.key}` }, rt.counters));
    return;
  }
  const span = startRequestSpan(req.headers['traceparent'] as string | undefined, facts.method, facts.path);
  const lines = [`${req.method} ${plan.path} HTTP/1.1`];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (name === 'traceparent' || name === 'host') continue;
    lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
  }
  lines.push(`host: ${plan.authority}`, `traceparent: ${formatTraceparent(span.traceId, span.spanId, 1)}`, '', '');
  const upstream = rt.dial(ep, ctx.client);
  let answered = false;
  upstream.once('data', () => (answered = true));
  upstream.on('error', () => {
    if (client.writable && !answered) writeRawRejection(client, rejection('upstream_connect', { grpc: false, detail: `${ep.ip}:${ep.port}` }, rt.counters));
    else client.destroy();
  });
  client.on('error', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  client.on('close', () => {
    upstream.destroy();
    span.finish();
    rt.exporter?.add(span);
  });
  upstream.write(lines.join('\r\n'));
  if (head.length) upstream.write(head);
  client.pipe(upstream);
  upstream.pipe(client);
}
