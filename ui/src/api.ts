/**
 * The UI's only source of data: the node API, reached through `ebmesh ui`'s
 * /api forwarder, with the same typed client and route declarations as the
 * CLI (src/api). Every call here is a GET the CLI can make too.
 */
import { ApiClient, type Transport } from '../../src/api/client.js';
import { EbmeshError } from '../../src/errors.js';

export { meshApi } from '../../src/api/mesh.js';
export { nodeApi } from '../../src/api/node.js';

/** fetch through the forwarder; cancelling a view aborts its calls. */
function fetchTransport(signal?: AbortSignal): Transport {
  return {
    peer: 'the mesh node',
    async request(method, path, body) {
      let res: Response;
      try {
        res = await fetch(`api${path}`, { method, body: body ?? null, signal: signal ?? null, headers: { accept: 'application/json' } });
      } catch (e) {
        throw new EbmeshError('EBMESH_API', `the UI server did not answer: ${(e as Error).message}`);
      }
      return { status: res.status, text: await res.text() };
    },
    async stream(method, path, onLine, streamSignal) {
      const res = await fetch(`api${path}`, { method, signal: streamSignal ?? signal ?? null, headers: { accept: 'application/x-ndjson' } });
      if (!res.ok) throw new EbmeshError('EBMESH_API', `${res.status} ${res.statusText}: ${await res.text()}`);
      if (!res.body) return;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          // A torn line is skipped, not fatal.
          if (line) try { onLine(line); } catch { /* skipped */ }
        }
      }
    },
  };
}

/** A client whose calls end when `signal` aborts (a view that went away). */
export function api(signal?: AbortSignal): ApiClient {
  return new ApiClient(fetchTransport(signal), 30_000);
}
