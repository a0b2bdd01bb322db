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
  if (!c) throw new EbmeshError('EBMESH_CIDR', `not an IPv4 CIDR: ${text}`);
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

/** Lowest free host address, skipping network, broadcast and `reserved` offsets. */
export function firstFree(c: Cidr, used: ReadonlySet<string>, reserved: number[] = []): string | undefined {
  for (let i = 1; i < cidrSize(c) - 1; i++) {
    if (reserved.includes(i)) continue;
    const ip = hostAddress(c, i);
    if (!used.has(ip)) return ip;
  }
  return undefined;
}
