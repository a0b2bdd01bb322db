/**
 * A listening TCP socket with SO_REUSEPORT, for net.Server.listen({fd}):
 * Node 20 has no reusePort option. Two node proxy generations both listen
 * on the node's tunnel port during a handover, so a peer that dials then is
 * never refused. Its own four libc bindings rather than kernel/libbpf.ts,
 * whose import loads libbpf: the proxy primary that needs this never loads
 * the BPF bindings.
 */
import koffi from 'koffi';
import { isIPv4 } from 'node:net';
import { EbmeshError } from '../errors.js';

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_REUSEPORT = 15;

type Fn = (...args: unknown[]) => number;
let libc: { socket: Fn; setsockopt: Fn; bind: Fn; listen: Fn; close: Fn } | undefined;
function c() {
  if (!libc) {
    const l = koffi.load('libc.so.6');
    libc = {
      socket: l.func('int socket(int domain, int type, int protocol)'),
      setsockopt: l.func('int setsockopt(int fd, int level, int name, const void *value, uint32 len)'),
      bind: l.func('int bind(int fd, const void *addr, uint32 len)'),
      listen: l.func('int listen(int fd, int backlog)'),
      close: l.func('int close(int fd)'),
      // koffi's functions are untyped at the FFI edge; the declarations above are the C signatures.
    } as unknown as typeof libc;
  }
  return libc!;
}

/** Errors carry the errno's name (EADDRINUSE: someone listens there without SO_REUSEPORT). */
const ERRNO: Record<number, string> = { 98: 'EADDRINUSE', 99: 'EADDRNOTAVAIL', 13: 'EACCES', 1: 'EPERM' };

export function reusePortListener(host: string, port: number, backlog = 511): number {
  if (!isIPv4(host)) throw new EbmeshError('EBMESH_BAD_ADDRESS', `reusePortListener: ${JSON.stringify(host)} is not an IPv4 address`);
  const f = c();
  const fd = f.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw new EbmeshError('EBMESH_SOCKET', `socket(): errno ${koffi.errno()}`);
  const fail = (what: string): never => {
    const e = koffi.errno();
    f.close(fd);
    const err = new EbmeshError('EBMESH_SOCKET', `${what} ${host}:${port}: ${ERRNO[e] ?? `errno ${e}`}`);
    throw err;
  };
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  if (f.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4) < 0) fail('SO_REUSEADDR on');
  if (f.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, one, 4) < 0) fail('SO_REUSEPORT on');
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(AF_INET, 0);
  sa.writeUInt16BE(port, 2);
  host.split('.').forEach((o, i) => sa.writeUInt8(Number(o), 4 + i));
  if (f.bind(fd, sa, 16) < 0) fail('bind');
  if (f.listen(fd, backlog) < 0) fail('listen');
  return fd;
}
