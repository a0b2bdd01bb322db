/**
 * IPv4 and IPv6 packets, byte by byte, for BPF_PROG_TEST_RUN: an Ethernet
 * header (the kernel takes the EtherType from it and pulls it), the IP
 * header (IPv6 when the addresses are IPv6, with the extension headers
 * asked for), a TCP or UDP header (or none, for other protocols) and the
 * payload, with the checksums a real stack would compute.
 */
import { parseIPv6 } from '../../src/resources/ip.js';

export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const IPPROTO_ICMP = 1;
export const IPPROTO_ICMPV6 = 58;
/** IPv6 extension headers (next-header values). */
export const NEXTHDR = { HOP: 0, ROUTING: 43, FRAGMENT: 44, DEST: 60 } as const;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** TCP header flags (byte 13). */
export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

export interface PacketSpec {
  src: string;
  dst: string;
  /** IPPROTO_*; TCP and UDP get their header, anything else only the payload. */
  proto: number;
  sport?: number;
  dport?: number;
  /** TCP flags; default ACK|PSH, a segment of an established connection. */
  tcpFlags?: number;
  /** TCP options (padded to 4 bytes with end-of-options): real stacks send timestamps on every segment. */
  tcpOptions?: Buffer;
  payload?: Buffer | string;
  /** Fragment offset in 8-byte units: a non-zero offset is a later fragment (no L4 header); IPv6 gets a fragment header. */
  fragOffset?: number;
  /** IPv6: extension headers before the transport header, in order (a fragment one comes from fragOffset). */
  extensions?: number[];
  /** EtherType of the frame; default IPv4. */
  etherType?: number;
}

function ipBytes(ip: string, where: string): Buffer {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new RangeError(`${where}: not an IPv4 address: "${ip}"`);
  }
  return Buffer.from(parts);
}

/** The Internet checksum (RFC 1071) of the given buffers, concatenated. */
function checksum(...bufs: Buffer[]): number {
  const all = Buffer.concat(bufs);
  let sum = 0;
  for (let i = 0; i < all.length; i += 2) sum += (all[i]! << 8) | (all[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function l4Header(p: PacketSpec, payload: Buffer): Buffer {
  if (p.proto === IPPROTO_TCP) {
    const flags = p.tcpFlags ?? TCP.ACK | TCP.PSH;
    const opts = p.tcpOptions ?? Buffer.alloc(0);
    const h = Buffer.alloc(20 + Math.ceil(opts.length / 4) * 4);
    opts.copy(h, 20);
    h.writeUInt16BE(p.sport ?? 0, 0);
    h.writeUInt16BE(p.dport ?? 0, 2);
    h.writeUInt32BE(1000, 4); // seq
    h.writeUInt32BE(flags & TCP.ACK ? 2000 : 0, 8); // ack
    h.writeUInt8((h.length / 4) << 4, 12); // data offset, in 4-byte words
    h.writeUInt8(flags, 13);
    h.writeUInt16BE(65535, 14); // window
    return h;
  }
  if (p.proto === IPPROTO_UDP) {
    const h = Buffer.alloc(8);
    h.writeUInt16BE(p.sport ?? 0, 0);
    h.writeUInt16BE(p.dport ?? 0, 2);
    h.writeUInt16BE(8 + payload.length, 4);
    return h;
  }
  return Buffer.alloc(0);
}

function ipv6Bytes(ip: string, where: string): Buffer {
  const v = parseIPv6(ip);
  if (v === undefined) throw new RangeError(`${where}: not an IPv6 address: "${ip}"`);
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(v >> 64n, 0);
  b.writeBigUInt64BE(v & 0xffffffffffffffffn, 8);
  return b;
}

/** The IPv6 packet alone: fixed header, extension headers, transport header, payload. */
export function ipv6Packet(p: PacketSpec): Buffer {
  const src = ipv6Bytes(p.src, 'packet source');
  const dst = ipv6Bytes(p.dst, 'packet destination');
  const payload = typeof p.payload === 'string' ? Buffer.from(p.payload, 'latin1') : p.payload ?? Buffer.alloc(0);
  const later = (p.fragOffset ?? 0) > 0;
  const l4 = later ? Buffer.alloc(0) : l4Header(p, payload);
  if (l4.length) {
    const pseudo = Buffer.concat([src, dst, Buffer.alloc(8)]);
    pseudo.writeUInt32BE(l4.length + payload.length, 32);
    pseudo.writeUInt8(p.proto, 39);
    const sum = checksum(pseudo, l4, payload);
    l4.writeUInt16BE(p.proto === IPPROTO_UDP && sum === 0 ? 0xffff : sum, p.proto === IPPROTO_TCP ? 16 : 6);
  }
  const kinds = [...(p.extensions ?? []), ...(p.fragOffset !== undefined ? [NEXTHDR.FRAGMENT] : [])];
  const exts = kinds.map((kind, i) => {
    const h = Buffer.alloc(8); // one 8-byte unit each: length 0, padding options (PadN) or fragment fields
    h.writeUInt8(kinds[i + 1] ?? p.proto, 0);
    if (kind === NEXTHDR.FRAGMENT) {
      h.writeUInt16BE(((p.fragOffset ?? 0) << 3) | 1, 2); // offset, more fragments
      h.writeUInt32BE(0x1234, 4);
    } else {
      h.writeUInt8(1, 2); // PadN of 4 bytes fills the header
      h.writeUInt8(4, 3);
    }
    return h;
  });
  const body = Buffer.concat([...exts, l4, payload]);
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(6 << 28, 0);
  ip.writeUInt16BE(body.length, 4);
  ip.writeUInt8(kinds[0] ?? p.proto, 6);
  ip.writeUInt8(64, 7); // hop limit
  src.copy(ip, 8);
  dst.copy(ip, 24);
  return Buffer.concat([ip, body]);
}

/** The IP packet alone (from the IPv4 header on). */
export function ipv4Packet(p: PacketSpec): Buffer {
  const src = ipBytes(p.src, 'packet source');
  const dst = ipBytes(p.dst, 'packet destination');
  const payload = typeof p.payload === 'string' ? Buffer.from(p.payload, 'latin1') : p.payload ?? Buffer.alloc(0);
  const later = (p.fragOffset ?? 0) > 0;
  const l4 = later ? Buffer.alloc(0) : l4Header(p, payload);
  if (l4.length) {
    const pseudo = Buffer.concat([src, dst, Buffer.from([0, p.proto]), Buffer.alloc(2)]);
    pseudo.writeUInt16BE(l4.length + payload.length, 10);
    const sum = checksum(pseudo, l4, payload);
    l4.writeUInt16BE(p.proto === IPPROTO_UDP && sum === 0 ? 0xffff : sum, p.proto === IPPROTO_TCP ? 16 : 6);
  }
  const ip = Buffer.alloc(20);
  ip.writeUInt8(0x45, 0); // version 4, 5 words
  ip.writeUInt16BE(20 + l4.length + payload.length, 2);
  ip.writeUInt16BE(0x1234, 4); // id
  ip.writeUInt16BE((p.fragOffset ?? 0) & 0x1fff, 6);
  ip.writeUInt8(64, 8); // ttl
  ip.writeUInt8(p.proto, 9);
  src.copy(ip, 12);
  dst.copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  return Buffer.concat([ip, l4, payload]);
}

/** An Ethernet frame holding the packet: what BPF_PROG_TEST_RUN takes for skb programs. */
export function frame(p: PacketSpec): Buffer {
  const v6 = p.src.includes(':');
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(p.etherType ?? (v6 ? ETH_P_IPV6 : ETH_P_IP), 12);
  return Buffer.concat([eth, v6 ? ipv6Packet(p) : ipv4Packet(p)]);
}
