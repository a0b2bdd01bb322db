/**
 * Whether some process of this network namespace listens on an IPv4
 * address and TCP port, read from /proc/net/tcp without touching the port
 * (a test bind could take a connection meant for the listener we ask about).
 */
import { readFileSync } from 'node:fs';

const TCP_LISTEN = '0A';

/** /proc/net/tcp's local_address: the address's 4 bytes as a host-order (little-endian) hex word, then the port. */
function localOf(field: string): { ip: string; port: number } | undefined {
  const m = /^([0-9A-F]{8}):([0-9A-F]{4})$/i.exec(field);
  if (!m) return undefined;
  const word = parseInt(m[1]!, 16);
  const ip = [word & 0xff, (word >>> 8) & 0xff, (word >>> 16) & 0xff, word >>> 24].join('.');
  return { ip, port: parseInt(m[2]!, 16) };
}

/** Listeners on ip:port (or on the wildcard at port) in /proc/net/tcp's text. */
export function listensIn(procNetTcp: string, ip: string, port: number): boolean {
  for (const line of procNetTcp.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] !== TCP_LISTEN) continue;
    const l = localOf(f[1] ?? '');
    if (l && l.port === port && (l.ip === ip || l.ip === '0.0.0.0')) return true;
  }
  return false;
}

export function tcpListens(ip: string, port: number): boolean {
  try {
    return listensIn(readFileSync('/proc/net/tcp', 'utf8'), ip, port);
  } catch {
    return false;
  }
}
