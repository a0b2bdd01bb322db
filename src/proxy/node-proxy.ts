/**
 * The node proxy's entry point: one TCP listener (per address family of the
 * node) for every connection the kernel steers to it. Each connection is sniffed, attributed (original
 * destination and client identity via the injected resolver) and handed to
 * the HTTP/1.x server (h1-server.ts), the HTTP/2 server, or the TCP
 * pass-through.
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import { H2_ERR, lazyHttp2 } from '../net/http2-lazy.js';
import net from 'node:net';
import { EbmeshError } from '../errors.js';
import { compileConfig } from './config.js';
import { channels, noteConnection } from './events.js';
import { serveHttp1 } from './h1-server.js';
import { handleRequest, type ConnContext, type Downstream } from './router.js';
import { ProxyRuntime } from './runtime.js';
import { sniff } from './sniff.js';
import { withPrefix } from '../net/prefixed-stream.js';
import { passThroughTcp } from './tcp-passthrough.js';
import { OtlpExporter } from './tracing.js';
import { drainSession, type ShutdownNotice } from '../net/h2-drain.js';
import type { NodeProxy, OriginalDestination, ProxyConfig, ProxyRoutingConfig, ProxyStats } from './types.js';

const connOf = new WeakMap<object, ConnContext>();
/** Each HTTP/2 session's way to announce its end without refusing a stream (../net/h2-drain.ts). */
const noticeOf = new WeakMap<http2.ServerHttp2Session, ShutdownNotice>();
const drain = (s: http2.ServerHttp2Session): void => drainSession(s, { notice: noticeOf.get(s) });

export async function startNodeProxy(config: ProxyConfig): Promise<NodeProxy> {
  let version = 1;
  const rt = new ProxyRuntime(compileConfig(config, version), config.tracing ? new OtlpExporter(config.tracing) : undefined, Math.random, config.dial);
  const sockets = new Set<net.Socket>();
  /** Connections handed to the relay (the tunnel, TCP pass-through), open until it says they ended. */
  let relayed = 0;
  const isEmpty = () => !sockets.size && !relayed;
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  /** Set by drain(): called when the last connection closed. */
  let onEmpty: (() => void) | undefined;
  let nextId = 1;

  // --- HTTP/2 (prior knowledge, or after an h2c upgrade) ----------------------
  // Made on the first HTTP/2 connection: a worker that never sees one never loads node:http2.
  let h2server: http2.Http2Server | undefined;
  const h2Server = (): http2.Http2Server => {
    if (h2server) return h2server;
    const h2 = (h2server = lazyHttp2().createServer({ maxSessionMemory: 64 }));
    h2.on('session', (session: http2.ServerHttp2Session) => {
      session.on('error', () => {});
      h2Sessions.add(session);
      session.once('close', () => h2Sessions.delete(session));
      // Sniffed or upgraded after the drain began: its first stream is answered, then GOAWAY.
      if (rt.draining) session.once('stream', () => drain(session));
    });
    h2.on('sessionError', () => {});
    h2.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      req.on('error', () => {});
      res.on('error', () => {});
      req.stream.on('error', () => {});
      const conn = connOf.get(req.stream.session as object);
      if (!conn) {
        req.stream.close(H2_ERR.REFUSED_STREAM);
        return;
      }
      const headers: http.IncomingHttpHeaders = {};
      for (const [k, v] of Object.entries(req.headers)) if (!k.startsWith(':')) headers[k] = v as string | string[];
      const ds: Downstream = {
        protocol: 'http2',
        method: req.method,
        url: req.url,
        authority: req.authority ?? String(req.headers.host ?? ''),
        headers,
        contentType: headers['content-type'],
        traceparent: headers['traceparent'] as string | undefined,
        body: req,
        hasBody: !req.stream.endAfterHeaders,
        conn,
        // Node's typings declare end() as overloads that TypeScript will not match against
        // ResponseSink's one signature; the object implements it (end(chunk) included).
        res: res as unknown as Downstream['res'],
        abort: () => req.stream.close(H2_ERR.INTERNAL_ERROR),
      };
      void handleRequest(rt, ds);
    });
    return h2;
  };
  // Map each h2 session to its connection: Node creates the session
  // synchronously inside emit('connection'), so we tag it right there.
  const h2Connection = (socket: net.Socket, conn: ConnContext, firstBytes: Buffer): void => {
    const { stream, notice } = withPrefix(socket, firstBytes);
    const tag = (s: http2.ServerHttp2Session): void => {
      connOf.set(s, conn);
      noticeOf.set(s, notice);
    };
    const h2 = h2Server();
    h2.once('session', tag);
    h2.emit('connection', stream);
    h2.off('session', tag);
  };

  // --- The listener -----------------------------------------------------------
  const onConnection = (socket: net.Socket): void => {
    rt.connections++;
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      if (isEmpty()) onEmpty?.();
    });
    socket.on('error', () => {}); // one peer's reset never takes the proxy down
    socket.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    let conn: ConnContext | undefined;
    let tcpOnly = false;
    let decided = false;
    let tunnelled: OriginalDestination | undefined;

    const attribute = (): boolean => {
      if (conn) return true;
      let orig;
      try {
        orig = config.resolveOriginal(socket);
      } catch (e) {
        noteConnection('resolve_failed', (e as Error).message);
      }
      if (!orig) {
        noteConnection('not_steered', `${socket.remoteAddress}:${socket.remotePort}`);
        socket.destroy();
        return false;
      }
      conn = { id: nextId++, client: { ...orig.client }, dst: { ...orig.dst } };
      // Cross-node mTLS: a remote backend with no L7 route: bytes into the tunnel, no parsing.
      if (orig.tunnel && config.forward && !rt.config.serviceAt(orig.dst.ip, orig.dst.port)) tunnelled = orig;
      tcpOnly = !!tunnelled || rt.config.serviceAt(orig.dst.ip, orig.dst.port)?.protocol === 'tcp';
      return true;
    };
    const hand = (kind: 'h2' | 'http1' | 'tcp'): void => {
      decided = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      if (!attribute()) return;
      const c = conn!;
      if (tunnelled || kind === 'tcp') {
        relayed++;
        void (tunnelled ? config.forward!(socket, buf, tunnelled) : passThroughTcp(rt, socket, buf, c)).finally(() => {
          relayed--;
          if (isEmpty()) onEmpty?.();
        });
        return;
      }
      if (kind === 'h2') {
        h2Connection(socket, c, buf);
        return;
      }
      serveHttp1(rt, socket, c, buf, { h2c: h2Connection });
    };
    const onData = (d: Buffer): void => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      if (!attribute()) return;
      if (tcpOnly) return hand('tcp');
      const kind = sniff(buf);
      if (kind !== 'more') hand(kind);
    };
    // Server-first protocols send nothing: after the sniff timeout it is TCP.
    const timer = setTimeout(() => !decided && hand('tcp'), rt.config.limits.sniffTimeoutMs);
    socket.on('data', onData);
  };
  // One server per address (IPv4 and IPv6 gateway): the same handling, the same port.
  const servers = [config.listen.host, ...(config.listen.hosts ?? [])].map((host) => ({ host, server: net.createServer({ pauseOnConnect: false }, onConnection) }));
  for (const { host, server } of servers) {
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.listen.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((e: NodeJS.ErrnoException) => {
      for (const s of servers) s.server.close();
      throw new EbmeshError('EBMESH_PROXY_LISTEN', `cannot listen on ${host.includes(':') ? `[${host}]` : host}:${config.listen.port}: ${e.message}`, { cause: e });
    });
  }
  const server = servers[0]!.server;
  const addr = server.address() as net.AddressInfo;

  return {
    address: { host: addr.address, port: addr.port },
    update(next: ProxyRoutingConfig): void {
      const compiled = compileConfig(next, ++version); // throws before anything changes
      rt.swap(compiled);
      if (channels.config.hasSubscribers) channels.config.publish({ version });
    },
    stats(): ProxyStats {
      return { responses: { ...rt.counters.byReason }, requests: rt.requests, connections: rt.connections, tcpPassthrough: rt.tcpPassthrough };
    },
    drain(): Promise<void> {
      rt.draining = true;
      for (const s of servers) s.server.close();
      for (const c of rt.http1) c.drain();
      for (const s of h2Sessions) drain(s);
      // TCP pass-through, WebSocket and tunnelled streams are left to end by themselves (the caller's deadline cuts them).
      return new Promise((resolve) => {
        onEmpty = resolve;
        if (isEmpty()) resolve();
      });
    },
    get open(): number {
      return sockets.size + relayed;
    },
    async close(): Promise<void> {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.server.close(() => resolve()))).concat([new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        resolve();
      })]));
      rt.pool.close();
      await rt.exporter?.close();
    },
  };
}
