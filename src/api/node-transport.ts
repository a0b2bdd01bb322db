/**
 * The client transport for Node processes: HTTP/1.1 over a unix socket or
 * TCP, either in TLS (mutual, with the mesh CA's certificates: an agent and
 * its control plane) or plain (the instance's root-only unix socket).
 */
import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ConnectionOptions, SecureContextOptions } from 'node:tls';
import { EbmeshError } from '../errors.js';
import { errorFromAnswer, type RawAnswer, type Transport } from './client.js';

export type ClientTls = SecureContextOptions & Pick<ConnectionOptions, 'servername' | 'checkServerIdentity'>;

/**
 * Where the calls go. tls may be a function: it is asked on every call, so
 * a renewed certificate is used from the next call on.
 */
export type Address =
  | { socketPath: string; tls?: ClientTls | (() => ClientTls) }
  | { host: string; port: number; tls?: ClientTls | (() => ClientTls) };

export interface NodeTransportOptions {
  /** Named in errors. */
  peer: string;
  /** What a refused or missing socket means to the caller (not running, unavailable). */
  unreachable: (code: string | undefined) => EbmeshError;
  /** Extra headers on every request (a bearer token). */
  headers?: Record<string, string>;
}

export function nodeTransport(addr: Address, opts: NodeTransportOptions): Transport {
  const tls = () => (typeof addr.tls === 'function' ? addr.tls() : addr.tls ?? {});
  const base = (): RequestOptions => ({
    ...('socketPath' in addr ? { socketPath: addr.socketPath } : { host: addr.host, port: addr.port }),
    ...tls(),
  });
  const send = addr.tls ? httpsRequest : httpRequest;
  const failed = (e: NodeJS.ErrnoException) =>
    e instanceof EbmeshError ? e
      : ['ENOENT', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET'].includes(e.code ?? '') ? opts.unreachable(e.code)
        : isTlsFailure(e) ? new EbmeshError('EBMESH_TLS', `${opts.peer}: TLS failed: ${e.message}`, { cause: e, hint: 'the peer\'s certificate must chain to the CA we were given and name whom we expect; ours must chain to the CA it trusts' })
          : new EbmeshError('EBMESH_API', `${opts.peer}: ${e.code ?? e.message}`, { cause: e });

  return {
    peer: opts.peer,
    request(method, path, body, timeoutMs) {
      return new Promise<RawAnswer>((resolve, reject) => {
        // agent: false: a pooled keep-alive socket the server has just timed out fails the next call with EPIPE.
        const req = send({
          ...base(), method, path, timeout: timeoutMs, agent: false,
          headers: { ...(opts.headers ?? {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(failed(e)));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        });
        req.on('timeout', () => req.destroy(new EbmeshError('EBMESH_API_TIMEOUT', `${opts.peer} did not answer ${method} ${path} in ${timeoutMs / 1000}s`)));
        req.on('error', (e: NodeJS.ErrnoException) => reject(failed(e)));
        req.end(body);
      });
    },
    stream(method, path, onLine, signal) {
      return new Promise<void>((resolve, reject) => {
        const req = send({ ...base(), method, path, agent: false, headers: { ...(opts.headers ?? {}), accept: 'application/x-ndjson' }, ...(signal ? { signal } : {}) }, (res) => {
          if (res.statusCode !== 200) {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => reject(errorFromAnswer({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }, `${method} ${path} at ${opts.peer}`)));
            return;
          }
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buf += chunk;
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              try { onLine(line); } catch (e) { req.destroy(e as Error); return; }
            }
          });
          res.on('end', () => resolve());
          res.on('error', (e) => (signal?.aborted ? resolve() : reject(failed(e))));
        });
        req.on('error', (e: NodeJS.ErrnoException) => (signal?.aborted ? resolve() : reject(failed(e))));
        req.end();
      });
    },
  };
}

/** An error of the TLS layer (a certificate refused by either side), as Node and OpenSSL name it. */
export function isTlsFailure(e: NodeJS.ErrnoException): boolean {
  return /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|ISSUER/i.test(e.code ?? '') || /certificate|SPIFFE/i.test(e.message);
}

/** An address as users write it: a unix socket path (or unix:PATH), or HOST:PORT. */
export function parseAddress(text: string): { socketPath: string } | { host: string; port: number } {
  if (text.startsWith('unix:')) return { socketPath: text.slice(5) };
  if (text.startsWith('/')) return { socketPath: text };
  const u = new URL(text.includes('://') ? text : `http://${text}`);
  const port = Number(u.port);
  if (!u.hostname || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new EbmeshError('EBMESH_USAGE', `"${text}" is neither a unix socket path nor HOST:PORT`);
  }
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port };
}
