/**
 * What `ebmesh ui` runs: a small HTTP server on the loopback that serves the
 * built bundle (dist/ui) and forwards /api/* to the node's unix socket.
 *
 * The node socket is root's and can change the mesh; a browser page cannot
 * be trusted with that, so the forwarder passes only GET and HEAD (the UI
 * only reads), and only when the Host header names the loopback, so a
 * page on another site cannot reach it by rebinding a DNS name to 127.0.0.1.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';
import type { AddressInfo } from 'node:net';
import { requestTarget } from '../api/server.js';

export interface UiServerOptions {
  socketPath: string;
  staticDir: string;
  port: number;
  host?: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/i;

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function apiError(res: ServerResponse, status: number, code: string, message: string): void {
  const text = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function forward(req: IncomingMessage, res: ServerResponse, socketPath: string, path: string): void {
  const up = request({ socketPath, method: req.method, path, headers: { accept: req.headers.accept ?? '*/*' } }, (ur) => {
    const headers: Record<string, string | string[]> = { 'cache-control': 'no-store' };
    for (const h of ['content-type', 'content-length']) {
      const v = ur.headers[h];
      if (v !== undefined) headers[h] = v;
    }
    res.writeHead(ur.statusCode ?? 502, headers);
    // Streams (?follow=1) go out as they come.
    res.flushHeaders();
    ur.pipe(res);
    ur.on('error', () => res.destroy());
  });
  up.on('error', (e: NodeJS.ErrnoException) => {
    if (res.headersSent) return void res.destroy();
    if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') apiError(res, 503, 'EBMESH_NOT_RUNNING', 'the mesh node is not running');
    else apiError(res, 502, 'EBMESH_API', e.message);
  });
  // A closed tab ends its stream at the node too.
  res.on('close', () => up.destroy());
  up.end();
}

function serveFile(req: IncomingMessage, res: ServerResponse, staticDir: string, pathname: string): void {
  let rel: string;
  try {
    rel = normalize(decodeURIComponent(pathname)).replace(/^([/\\])+/, '');
  } catch {
    return plain(res, 400, 'bad path');
  }
  if (rel.split(sep).includes('..')) return plain(res, 400, 'bad path');
  let file = join(staticDir, rel || 'index.html');
  let st = statSync(file, { throwIfNoEntry: false });
  if (st?.isDirectory()) {
    file = join(file, 'index.html');
    st = statSync(file, { throwIfNoEntry: false });
  }
  if (!st?.isFile()) {
    // The app has one page; anything that is not a file and has no extension is that page.
    if (extname(rel)) return plain(res, 404, 'not found');
    file = join(staticDir, 'index.html');
    st = statSync(file, { throwIfNoEntry: false });
    if (!st?.isFile()) return plain(res, 500, 'the UI is not built (npm run build)');
  }
  const hashed = file.includes(`${sep}assets${sep}`);
  res.writeHead(200, {
    'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
    'content-length': st.size,
    'cache-control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
    'x-content-type-options': 'nosniff',
  });
  if (req.method === 'HEAD') return void res.end();
  createReadStream(file).on('error', () => res.destroy()).pipe(res);
}

export function startUiServer(opts: UiServerOptions): Promise<{ server: Server; url: string }> {
  const host = opts.host ?? '127.0.0.1';
  const server = createServer((req, res) => {
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    if (!LOOPBACK_HOST.test(req.headers.host ?? '')) return plain(res, 403, 'only http://127.0.0.1 or http://localhost may be used');
    const url = requestTarget(req.url ?? '/');
    if (url.pathname === '/api' || url.pathname.startsWith('/api/')) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return apiError(res, 405, 'EBMESH_READ_ONLY', 'the UI reads the node API; changes go through the CLI');
      return forward(req, res, opts.socketPath, url.pathname.slice(4) + url.search);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, 'method not allowed');
    serveFile(req, res, opts.staticDir, url.pathname);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      const { port } = server.address() as AddressInfo;
      resolve({ server, url: `http://${host}:${port}/` });
    });
  });
}
