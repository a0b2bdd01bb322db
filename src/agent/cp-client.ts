/**
 * An agent's calls to the control plane: HTTP+JSON over a unix socket (the
 * lab, one host) or TCP (HOST:PORT), with the node's join token. Errors of
 * the control plane come back as EbmeshError with its code.
 */
import { request } from 'node:http';
import { EbmeshError } from '../errors.js';

export interface CpAddress {
  socketPath?: string;
  host?: string;
  port?: number;
}

export function parseCpAddress(addr: string): CpAddress {
  if (addr.startsWith('unix:')) return { socketPath: addr.slice(5) };
  if (addr.startsWith('/')) return { socketPath: addr };
  const u = new URL(addr.includes('://') ? addr : `http://${addr}`);
  return { host: u.hostname, port: Number(u.port || 80) };
}

export class CpClient {
  constructor(private readonly addr: CpAddress, private readonly token: string) {}

  call<T>(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        { ...this.addr, method, path, timeout: timeoutMs,
          headers: { authorization: `Bearer ${this.token}`, ...(payload ? { 'content-type': 'application/json' } : {}) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            let json: any;
            try { json = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { return reject(new EbmeshError('EBMESH_API', `bad answer from the control plane to ${path}`)); }
            if (res.statusCode !== 200) {
              const e = json.error ?? {};
              return reject(new EbmeshError(e.code ?? 'EBMESH_API', String(e.message ?? `HTTP ${res.statusCode}`), { hint: e.hint }));
            }
            resolve(json as T);
          });
        },
      );
      req.on('timeout', () => req.destroy(new EbmeshError('EBMESH_CP_UNAVAILABLE', `the control plane did not answer ${path} in ${timeoutMs / 1000}s`)));
      req.on('error', (e: NodeJS.ErrnoException) =>
        reject(e instanceof EbmeshError ? e : new EbmeshError('EBMESH_CP_UNAVAILABLE', `the control plane is unreachable: ${e.code ?? e.message}`)));
      req.end(payload);
    });
  }
}
