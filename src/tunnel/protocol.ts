/**
 * The wire contract of the tunnel, shared by both ends. One HTTP/2 session
 * over TLS 1.3 per pair of nodes; one CONNECT stream per proxied TCP
 * connection. The :authority is the destination (pod IP:port, already
 * chosen by the sending node); the source workload's SPIFFE ID travels in a
 * header that the receiving node believes only because the peer that sent it
 * proved, with its node certificate, that it is a node of this mesh.
 */
export const TUNNEL_PORT = 15008;
export const ALPN = 'h2';
export const H_SOURCE_ID = 'ebmesh-source-id';
export const H_SOURCE_IP = 'ebmesh-source-ip';
export const H_REASON = 'ebmesh-reason';

/** Larger than HTTP/2's 64 KiB default windows, or a single stream cannot fill a fast link. */
export const STREAM_WINDOW = 4 << 20;
export const SESSION_WINDOW = 64 << 20;
/** nghttp2 answers ENHANCE_YOUR_CALM past this much buffered per session (default 10 MB): room for the windows above. */
export const MAX_SESSION_MEMORY_MB = 256;
export const SETTINGS = { initialWindowSize: STREAM_WINDOW, maxConcurrentStreams: 10_000, enablePush: false } as const;

export interface Destination {
  ip: string;
  port: number;
}

export function authority(d: Destination): string {
  return `${d.ip}:${d.port}`;
}

export function parseAuthority(a: string | undefined): Destination | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(a ?? '');
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535 || m[1]!.split('.').some((o) => Number(o) > 255)) return undefined;
  return { ip: m[1]!, port };
}
