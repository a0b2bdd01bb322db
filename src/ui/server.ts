/**
 * What `ebmesh ui` runs: a small HTTP server on the loopback that serves the
 * built bundle (dist/ui) and forwards /api/* to the node's unix socket.
 *
 * The node socket is root's: it holds workloads' env and files, flows,
 * identities, and can change the mesh. Every local user can reach the
 * loopback, so the server answers only whoever holds its token, a random
 * one made at start and printed in the URL (`/?token=…`, as Jupyter does):
 * that request gets it back as a cookie (HttpOnly, SameSite=Strict) and is
 * sent on to the same page without it; scripts may send
 * `Authorization: Bearer TOKEN`. Anyone else gets 401 and nothing of the
 * mesh, not even the page. A browser page cannot be trusted with changes,
 * so the forwarder passes only GET and HEAD (the UI only reads), and only
 * when the Host header names the loopback, so a page on another site cannot
 * reach it by rebinding a DNS name to 127.0.0.1.
 */
import { timingSafeEqual } from 'node:crypto';
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
  /** What a request must carry (URL, cookie or bearer): the one who started the UI has it. */
  token: string;
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

const same = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** How a request stands: it carries the token (cookie or bearer), brings it in its URL (to be swapped for a cookie), or neither. */
function authOf(req: IncomingMessage, url: { searchParams: URLSearchParams }, token: string, cookieName: string): 'ok' | 'login' | 'no' {
  const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
  if (bearer !== undefined) return same(bearer, token) ? 'ok' : 'no';
  const inUrl = url.searchParams.get('token');
  if (inUrl !== null) return same(inUrl, token) ? 'login' : 'no';
  const c = cookie(req, cookieName);
  return c !== undefined && same(c, token) ? 'ok' : 'no';
}

export function startUiServer(opts: UiServerOptions): Promise<{ server: Server; url: string; loginUrl: string }> {
  const host = opts.host ?? '127.0.0.1';
  if (opts.token.length < 16) throw new Error('the UI token must be at least 16 characters');
  // Cookies are per host, not per port: two UIs on 127.0.0.1 keep theirs apart by name.
  let cookieName = 'ebmesh_ui';
  const server = createServer((req, res) => {
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    if (!LOOPBACK_HOST.test(req.headers.host ?? '')) return plain(res, 403, 'only http://127.0.0.1 or http://localhost may be used');
    const url = requestTarget(req.url ?? '/');
    const auth = authOf(req, url, opts.token, cookieName);
    const isApi = url.pathname === '/api' || url.pathname.startsWith('/api/');
    if (auth === 'no') {
      res.setHeader('www-authenticate', 'Bearer realm="ebmesh ui"');
      if (isApi) return apiError(res, 401, 'EBMESH_UNAUTHENTICATED', 'the UI answers only with its token');
      return plain(res, 401, 'ebmesh ui answers only with its token: open the address `ebmesh ui` printed (…/?token=…)');
    }
    if (auth === 'login') {
      url.searchParams.delete('token');
      res.writeHead(302, {
        'set-cookie': `${cookieName}=${opts.token}; HttpOnly; SameSite=Strict; Path=/`,
        location: url.pathname + (url.searchParams.size ? `?${url.searchParams}` : ''),
        'cache-control': 'no-store',
      });
      return void res.end();
    }
    if (isApi) {
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
      cookieName = `ebmesh_ui_${port}`;
      const url = `http://${host}:${port}/`;
      resolve({ server, url, loginUrl: `${url}?token=${encodeURIComponent(opts.token)}` });
    });
  });
}
