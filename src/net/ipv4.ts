/** IPv4 arithmetic on plain numbers (host order), for IPAM and CIDR checks. */
export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => (acc * 256 + Number(o)) >>> 0, 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

export interface Cidr {
  base: number;
  bits: number;
  size: number;
  text: string;
}

export function parseCidr(text: string): Cidr {
  const [ip = '', bitsText = '32'] = text.split('/');
  const bits = Number(bitsText);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { base: (ipToInt(ip) & mask) >>> 0, bits, size: 2 ** (32 - bits), text };
}

export function cidrContains(c: Cidr, ip: string | number): boolean {
  const n = typeof ip === 'string' ? ipToInt(ip) : ip;
  return n >= c.base && n < c.base + c.size;
}

/** True when `inner` lies inside `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.bits >= outer.bits && cidrContains(outer, inner.base);
}

/** The n-th /bits sub-block of a CIDR (node slices of the pod CIDR). */
export function subnet(c: Cidr, bits: number, n: number): Cidr {
  const size = 2 ** (32 - bits);
  return { base: c.base + n * size, bits, size, text: `${intToIp(c.base + n * size)}/${bits}` };
}

/** Lowest free host address in a CIDR, skipping network, broadcast and `reserved`. */
export function firstFree(c: Cidr, used: ReadonlySet<string>, reserved: number[] = []): string | undefined {
  for (let i = 1; i < c.size - 1; i++) {
    if (reserved.includes(i)) continue;
    const ip = intToIp(c.base + i);
    if (!used.has(ip)) return ip;
  }
  return undefined;
}
