/**
 * Address allocation on top of the IPv4 primitives in resources/ipv4.ts:
 * node slices of the pod CIDR, host addresses, the lowest free address.
 */
import { cidrContainsIp, formatCidr, formatIPv4, parseCidr, parseIPv4, type Cidr } from '../resources/ipv4.js';
import { EbmeshError } from '../errors.js';

export type { Cidr };
export { formatCidr };

/** For CIDRs the schemas have already checked. */
export function mustParseCidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new EbmeshError('EBMESH_BAD_ADDRESS', `not an IPv4 CIDR: ${text}`);
  return c;
}

export function containsAddress(c: Cidr, ip: string): boolean {
  const n = parseIPv4(ip);
  return n !== undefined && cidrContainsIp(c, n);
}

export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.len);
}

/** The n-th /len block of a CIDR (a node's slice of the pod CIDR). */
export function subnet(c: Cidr, len: number, n: number): Cidr {
  return { addr: (c.addr + n * 2 ** (32 - len)) >>> 0, len };
}

/** The i-th address of a CIDR (1 is the node's own on a pod subnet). */
export function hostAddress(c: Cidr, i: number): string {
  return formatIPv4((c.addr + i) >>> 0);
}

/**
 * Hands out the free host addresses of a CIDR in order, skipping network,
 * broadcast, `reserved` offsets and what `used` holds at each call. One
 * allocator serves a whole apply, so 10,000 allocations are one scan, not
 * 10,000 scans from the start.
 */
export function allocator(c: Cidr, used: { has(ip: string): boolean }, reserved: number[] = []): () => string | undefined {
  let i = 1;
  return () => {
    for (; i < cidrSize(c) - 1; i++) {
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
