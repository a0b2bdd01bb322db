import { request } from 'node:http';
import { EbmeshError } from '../errors.js';
import type { InstancePaths } from '../paths.js';

/** Calls the node API over its unix socket; API errors come back as EbmeshError. */
export function call<T = unknown>(paths: InstancePaths, method: string, path: string, body?: unknown, timeoutMs = 120_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      // agent: false: a pooled keep-alive socket the daemon has just timed out
      // fails the next call with EPIPE (Node 20's global agent keeps alive).
      { socketPath: paths.apiSocket, method, path, headers: payload ? { 'content-type': 'application/json' } : {}, timeout: timeoutMs, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: any;
          try { json = JSON.parse(text); } catch { return reject(new EbmeshError('EBMESH_API', `bad answer from the node: ${text.slice(0, 200)}`)); }
          if (res.statusCode !== 200) {
            const e = json.error ?? {};
            const err = new EbmeshError(e.code ?? 'EBMESH_API', String(e.message ?? 'request failed'), { hint: e.hint });
            return reject(err);
          }
          resolve(json as T);
        });
      },
    );
    req.on('timeout', () => req.destroy(new EbmeshError('EBMESH_API_TIMEOUT', `the node did not answer ${method} ${path} in ${timeoutMs / 1000}s`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
        reject(new EbmeshError('EBMESH_NOT_RUNNING', `the mesh node "${paths.instance}" is not running`, { hint: 'start it with: ebmesh up' }));
      } else reject(e);
    });
    if (payload) req.write(payload);
    req.end();
  });
}

export async function isRunning(paths: InstancePaths): Promise<boolean> {
  try {
    await call(paths, 'GET', '/v1/status', undefined, 5000);
    return true;
  } catch {
    return false;
  }
}
