/**
 * Address allocation on top of the address primitives in resources/ip.ts,
 * for either family: node slices of the pod CIDR, host addresses, the lowest
 * free address.
 */
import { cidrContainsIp, familyBits, formatCidr, formatIp, parseCidr, parseIp, type Cidr, type IpFamily } from '../resources/ip.js';
import { EbmeshError } from '../errors.js';

export type { Cidr, IpFamily };
export { formatCidr };

/** For CIDRs the schemas have already checked; `family` when only one is right there. */
export function mustParseCidr(text: string, family?: IpFamily): Cidr {
  const c = parseCidr(text);
  if (!c || (family !== undefined && c.family !== family)) {
    throw new EbmeshError('EBMESH_BAD_ADDRESS', `not an ${family === 6 ? 'IPv6' : family === 4 ? 'IPv4' : 'IP'} CIDR: ${text}`);
  }
  return c;
}

export function containsAddress(c: Cidr, ip: string): boolean {
  const a = parseIp(ip);
  return a !== undefined && cidrContainsIp(c, a);
}

/** Addresses in a CIDR (a bigint: an IPv6 prefix holds more than a double counts exactly). */
export function cidrSize(c: Cidr): bigint {
  return 1n << BigInt(familyBits(c.family) - c.len);
}

/** The n-th /len block of a CIDR (a node's slice of the pod CIDR). */
export function subnet(c: Cidr, len: number, n: number): Cidr {
  return { family: c.family, addr: c.addr + BigInt(n) * (1n << BigInt(familyBits(c.family) - len)), len };
}

/** The i-th address of a CIDR (1 is the node's own on a pod subnet). */
export function hostAddress(c: Cidr, i: number): string {
  return formatIp({ family: c.family, value: c.addr + BigInt(i) });
}

/**
 * Hands out the free host addresses of a CIDR in order, skipping network,
 * the last address (IPv4's broadcast; kept free in IPv6 too, so one rule
 * holds for both), `reserved` offsets and what `used` holds at each call.
 * One allocator serves a whole apply, so 10,000 allocations are one scan,
 * not 10,000 scans from the start.
 */
export function allocator(c: Cidr, used: { has(ip: string): boolean }, reserved: number[] = []): () => string | undefined {
  // An IPv6 prefix may hold 2^64 and more: no allocation scans that far.
  const end = Number(cidrSize(c) < 1n << 40n ? cidrSize(c) : 1n << 40n) - 1;
  let i = 1;
  return () => {
    for (; i < end; i++) {
      if (reserved.includes(i)) continue;
      const ip = hostAddress(c, i);
      if (!used.has(ip)) {
        i++;
        return ip;
      }
    }
    return undefined;
  };
}
