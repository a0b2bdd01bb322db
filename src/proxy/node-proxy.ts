/**
 * The node proxy's entry point: one TCP listener for every connection the
 * kernel steers to it. Each connection is sniffed, attributed (original
 * destination and client identity via the injected resolver) and handed to
 * the HTTP/1.1 server, the HTTP/2 server, or the TCP pass-through.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { EbmeshError } from '../errors.js';
import { compileConfig } from './config.js';
import { channels } from './events.js';
import { upgradeToH2c } from './h2c-upgrade.js';
import { checkHttp1Framing } from './http1-guard.js';
import { rejection } from './responses.js';
import { handleRequest, type ConnContext, type Downstream } from './router.js';
import { ProxyRuntime } from './runtime.js';
import { sniff } from './sniff.js';
import { withPrefix } from './prefixed-stream.js';
import { passThroughTcp } from './tcp-passthrough.js';
import { OtlpExporter } from './tracing.js';
import type { NodeProxy, OriginalDestination, ProxyConfig, ProxyRoutingConfig, ProxyStats } from './types.js';
import { tunnelUpgrade, writeRawRejection } from './websocket.js';

const connOf = new WeakMap<object, ConnContext>();

function noteConnection(reason: string, detail: string): void {
  if (channels.connection.hasSubscribers) channels.connection.publish({ reason, detail });
}

export async function startNodeProxy(config: ProxyConfig): Promise<NodeProxy> {
  let version = 1;
  const rt = new ProxyRuntime(compileConfig(config, version), config.tracing ? new OtlpExporter(config.tracing) : undefined, Math.random, config.dial);
  const sockets = new Set<net.Socket>();
  let nextId = 1;

  // --- HTTP/1.1 -------------------------------------------------------------
  const h1 = http.createServer({ insecureHTTPParser: false, keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 30_000 });
  h1.on('request', (req, res) => {
    req.on('error', () => {});
    res.on('error', () => {});
    const conn = connOf.get(req.socket);
    if (!conn) {
      res.destroy();
      return;
    }
    const problem = checkHttp1Framing(req.rawHeaders, req.httpVersion);
    const ds: Downstream = {
      protocol: 'http1',
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      authority: req.headers.host ?? '',
      headers: req.headers,
      body: req,
      hasBody: req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0,
      conn,
      res,
      abort: () => res.destroy(),
      closeAfter: problem !== undefined,
    };
    if (problem) {
      // Never forwarded; the connection is closed after this answer because
      // we no longer know where the next request starts.
      noteConnection('bad_framing', `${problem.reason}: ${problem.detail}`);
      const r = rejection('bad_request', { grpc: false, detail: problem.reason }, rt.counters);
      res.writeHead(400, { ...r.headers, connection: 'close', 'content-length': Buffer.byteLength(r.body) });
      res.end(r.body, () => req.socket.destroySoon());
      return;
    }
    void handleRequest(rt, ds);
  });
  h1.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.on('error', () => {});
    const conn = connOf.get(socket);
    const problem = checkHttp1Framing(req.rawHeaders, req.httpVersion);
    if (!conn || problem) {
      writeRawRejection(socket, rejection('bad_request', { grpc: false, detail: problem?.reason ?? 'not steered' }, rt.counters));
      return;
    }
    const proto = String(req.headers.upgrade ?? '').toLowerCase();
    if (proto === 'h2c') {
      if (req.headers['transfer-encoding'] || Number(req.headers['content-length'] ?? 0) > 65_535) {
        writeRawRejection(socket, rejection('bad_request', { grpc: false, detail: 'h2c upgrade needs a Content-Length body of at most 64 KiB' }, rt.counters));
        return;
      }
      upgradeToH2c(req, socket, head, 10_000).then(
        (bytes) => h2Connection(socket, conn, bytes),
        (e: Error) => {
          noteConnection('h2c_upgrade_failed', e.message);
          socket.destroy();
        },
      );
      return;
    }
    tunnelUpgrade(rt, req, socket, head, conn);
  });
  h1.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
    // Node's parser refused the bytes: answer 400 once and close.
    noteConnection('bad_request', `${err.code ?? ''} ${err.message}`);
    rt.counters.count('bad_request');
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    socket.destroySoon();
  });

  // --- HTTP/2 (prior knowledge, or after an h2c upgrade) ----------------------
  const h2 = http2.createServer({ maxSessionMemory: 64 });
  h2.on('session', (session: http2.ServerHttp2Session) => {
    session.on('error', () => {});
  });
  h2.on('sessionError', () => {});
  h2.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    req.on('error', () => {});
    res.on('error', () => {});
    req.stream.on('error', () => {});
    const conn = connOf.get(req.stream.session as object);
    if (!conn) {
      req.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
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
      body: req,
      hasBody: !req.stream.endAfterHeaders,
      conn,
      res: res as unknown as Downstream['res'],
      abort: () => req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR),
    };
    void handleRequest(rt, ds);
  });
  // Map each h2 session to its connection: Node creates the session
  // synchronously inside emit('connection'), so we tag it right there.
  const h2Connection = (socket: net.Socket, conn: ConnContext, firstBytes: Buffer): void => {
    const tag = (s: http2.ServerHttp2Session): void => {
      connOf.set(s, conn);
    };
    h2.once('session', tag);
    h2.emit('connection', withPrefix(socket, firstBytes));
    h2.off('session', tag);
  };

  // --- The listener -----------------------------------------------------------
  const server = net.createServer({ pauseOnConnect: false }, (socket) => {
    rt.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
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
      if (tunnelled) {
        config.forward!(socket, buf, tunnelled);
        return;
      }
      if (kind === 'tcp') {
        passThroughTcp(rt, socket, buf, c);
        return;
      }
      if (kind === 'h2') {
        h2Connection(socket, c, buf);
        return;
      }
      connOf.set(socket, c);
      socket.unshift(buf);
      h1.emit('connection', socket);
      socket.resume();
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
  });
  server.on('error', () => {});

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((e: NodeJS.ErrnoException) => {
    throw new EbmeshError('EBMESH_PROXY_LISTEN', `cannot listen on ${config.listen.host}:${config.listen.port}: ${e.message}`, { cause: e });
  });
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
    async close(): Promise<void> {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      h1.closeAllConnections();
      rt.pool.close();
      await rt.exporter?.close();
    },
  };
}
