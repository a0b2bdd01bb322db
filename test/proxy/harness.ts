/**
 * Test harness: a fake of the kernel's steering (original destination and
 * client identity by the client's source port — the real lookup is a BPF
 * map), echo backends on 127.0.0.1:0, and clients that dial the proxy.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { startNodeProxy, type NodeProxy, type OriginalDestination, type ProxyConfig, type ProxyRoutingConfig } from '../../src/proxy/index.js';

export class FakeSteering {
  readonly byPort = new Map<number, OriginalDestination>();
  fallback: OriginalDestination | undefined;
  readonly resolve = (s: net.Socket): OriginalDestination | undefined => this.byPort.get(s.remotePort ?? 0) ?? this.fallback;
}

export const client = (identity: string, namespace = 'default') => ({ identity, namespace });

export interface Started {
  proxy: NodeProxy;
  steer: FakeSteering;
  port: number;
}

export async function startProxy(cfg: ProxyRoutingConfig & Partial<Pick<ProxyConfig, 'tracing'>>): Promise<Started> {
  const steer = new FakeSteering();
  const proxy = await startNodeProxy({ ...cfg, listen: { host: '127.0.0.1', port: 0 }, resolveOriginal: steer.resolve });
  return { proxy, steer, port: proxy.address.port };
}

/** A socket to the proxy that the fake kernel attributes to `orig`. */
export function dial(s: Started, orig: OriginalDestination): net.Socket {
  const sock = net.connect({ host: '127.0.0.1', port: s.port });
  sock.once('connect', () => s.steer.byPort.set(sock.localPort!, orig));
  return sock;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  trailers: Record<string, string>;
}

export function request(
  s: Started,
  orig: OriginalDestination,
  opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer; agent?: http.Agent; host?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: { host: opts.host ?? `${orig.dst.ip}:${orig.dst.port}`, ...(opts.headers ?? {}) },
        ...(opts.agent ? { agent: opts.agent } : {}),
        createConnection: (() => dial(s, orig)) as never,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), trailers: res.trailers as Record<string, string> }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('test request timed out')));
    req.end(opts.body);
  });
}

export function h2Session(s: Started, orig: OriginalDestination): http2.ClientHttp2Session {
  const session = http2.connect(`http://${orig.dst.ip}:${orig.dst.port}`, { createConnection: () => dial(s, orig) });
  session.on('error', () => {});
  return session;
}

export function h2Request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string | Buffer): Promise<Reply & { trailers: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    const st = session.request(headers, { endStream: body === undefined });
    let status = 0;
    let resHeaders: http.IncomingHttpHeaders = {};
    let trailers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    st.on('response', (h) => {
      status = Number(h[':status']);
      resHeaders = h as http.IncomingHttpHeaders;
    });
    st.on('trailers', (t) => (trailers = t as Record<string, string>));
    st.on('data', (c: Buffer) => chunks.push(c));
    st.on('end', () => resolve({ status, headers: resHeaders, body: Buffer.concat(chunks).toString(), trailers }));
    st.on('error', reject);
    if (body !== undefined) st.end(body);
  });
}

export interface Backend {
  name: string;
  port: number;
  hits: number;
  /** Requests whose head arrived, whether or not their body completed. */
  partial: number;
  seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[];
  close(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string, b: Backend) => void;

/** An HTTP/1.1 backend that echoes what it received as JSON unless `handler` answers. */
export async function startBackend(name: string, handler?: Handler): Promise<Backend> {
  const b: Backend = { name, port: 0, hits: 0, partial: 0, seen: [], close: async () => {} };
  const server = http.createServer((req, res) => {
    b.partial++;
    req.on('error', () => {});
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      b.hits++;
      b.partial--;
      const body = Buffer.concat(chunks).toString();
      b.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (handler) return handler(req, res, body, b);
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-backend', name);
      res.end(JSON.stringify({ backend: name, method: req.method, url: req.url, headers: req.headers, body }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.port = (server.address() as AddressInfo).port;
  b.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return b;
}

export async function startH2Backend(name: string, handler?: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: Buffer) => void): Promise<Backend> {
  const b: Backend = { name, port: 0, hits: 0, partial: 0, seen: [], close: async () => {} };
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      b.hits++;
      const body = Buffer.concat(chunks);
      b.seen.push({ method: String(headers[':method']), url: String(headers[':path']), headers: headers as http.IncomingHttpHeaders, body: body.toString() });
      if (handler) return handler(stream, headers, body);
      stream.respond({ ':status': 200, 'content-type': 'application/json', 'x-backend': name });
      stream.end(JSON.stringify({ backend: name, path: headers[':path'], body: body.toString() }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.port = (server.address() as AddressInfo).port;
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  b.close = () =>
    new Promise((r) => {
      for (const s of sessions) s.destroy();
      server.close(() => r());
    });
  return b;
}

export const svc = (name: string, vip: string, port: number, endpoints: Backend[], extra: Partial<{ namespace: string; protocol: 'auto' | 'http1' | 'http2' | 'tcp' }> = {}) => ({
  name,
  namespace: extra.namespace ?? 'default',
  vip,
  port,
  protocol: extra.protocol ?? 'auto',
  endpoints: endpoints.map((b) => ({ ip: '127.0.0.1', port: b.port })),
});

export const to = (vip: string, port: number, who = client('spiffe://cluster.local/ns/default/sa/client')): OriginalDestination => ({ dst: { ip: vip, port }, client: who });

export function route(name: string, parent: string, rules: unknown[], namespace = 'default'): never {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: parent }], rules },
  } as never;
}
