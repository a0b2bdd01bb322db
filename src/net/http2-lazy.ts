/**
 * node:http2, loaded on first use: a node proxy worker that never sees an
 * HTTP/2 connection never pays for the module (memory per worker process).
 */
import { createRequire } from 'node:module';
import type http2 from 'node:http2';

let mod: typeof http2 | undefined;

export function lazyHttp2(): typeof http2 {
  return (mod ??= createRequire(import.meta.url)('node:http2') as typeof http2);
}

/** The HTTP/2 error codes the proxy uses (RFC 9113, 7), without loading the module. */
export const H2_ERR = { NO_ERROR: 0, INTERNAL_ERROR: 2, REFUSED_STREAM: 7, CANCEL: 8 } as const;
