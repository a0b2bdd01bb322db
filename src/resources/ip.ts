/**
 * Addresses and prefixes of both families as one type: the family and the
 * address as an unsigned bigint (32 bits for IPv4, 128 for IPv6). Policy's
 * compiler and evaluators, the address allocator and the schemas all reason
 * about containment the same way for either family, so they share this one
 * implementation; only the parsing and printing of text differ by family.
 *
 * IPv6 text is printed in its canonical form (RFC 5952: lower case, no
 * leading zeros, the longest run of zero groups as "::"), and the schemas
 * store addresses that way, so an address compares equal as text wherever
 * it is used as a key.
 */
import { formatIPv4, parseIPv4 } from './ipv4.js';

export type IpFamily = 4 | 6;

export interface IpAddress {
  readonly family: IpFamily;
  /** The address as an unsigned number of familyBits(family) bits. */
  readonly value: bigint;
}

export interface Cidr {
  readonly family: IpFamily;
  /** Network address, host bits cleared. */
  readonly addr: bigint;
  /** Prefix length, 0..32 or 0..128. */
  readonly len: number;
}

export const familyBits = (f: IpFamily): number => (f === 4 ? 32 : 128);

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** The 128-bit value of an IPv6 address in text (with "::" and an embedded dotted IPv4 tail), or undefined. No zone ids. */
export function parseIPv6(s: string): bigint | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  let text = s;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) > 0) {
    const v4 = parseIPv4(text.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = [v4 >>> 16, v4 & 0xffff];
    text = `${text.slice(0, lastColon + 1)}0`; // a placeholder group, replaced below
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): string[] | undefined => (h === '' ? [] : h.split(':'));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !rest) return undefined;
  if (tail.length) {
    // The placeholder is the last group written: it stands for two.
    const last = halves.length === 2 ? rest : head;
    last.pop();
  }
  const written = head.length + rest.length + tail.length;
  if (halves.length === 1 ? written !== 8 : written > 7) return undefined;
  const all = [...head, ...Array<string>(8 - written).fill('0'), ...rest];
  let v = 0n;
  for (const g of all) {
    if (!HEX_GROUP.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  for (const g of tail) v = (v << 16n) | BigInt(g);
  return v;
}

/** RFC 5952 text of a 128-bit value; a v4-mapped address ends in its dotted IPv4. */
export function formatIPv6(v: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${formatIPv4(Number(v & 0xffffffffn))}`;
  // The longest run of two or more zero groups (the first of equals) becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** Either family's address in text. */
export function parseIp(s: string): IpAddress | undefined {
  if (s.includes(':')) {
    const v = parseIPv6(s);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  const v = parseIPv4(s);
  return v === undefined ? undefined : { family: 4, value: BigInt(v) };
}

export function formatIp(a: IpAddress): string {
  return a.family === 4 ? formatIPv4(Number(a.value)) : formatIPv6(a.value);
}

export function ipFamilyOf(s: string): IpFamily | undefined {
  return parseIp(s)?.family;
}

/** The canonical text of an address (IPv6 compressed and lower case); undefined if it is none. */
export function canonicalIp(s: string): string | undefined {
  const a = parseIp(s);
  return a && formatIp(a);
}

/** ::ffff:0:0/96: an IPv4 address in IPv6 clothing, never a native IPv6 address. */
export function isV4Mapped(a: IpAddress): boolean {
  return a.family === 6 && a.value >> 32n === 0xffffn;
}

export function prefixMask(family: IpFamily, len: number): bigint {
  const bits = BigInt(familyBits(family));
  const all = (1n << bits) - 1n;
  return (all << (bits - BigInt(len))) & all;
}

/**
 * Parses "a.b.c.d/n" or "x:y::z/n". Host bits are cleared rather than
 * rejected, as Kubernetes accepts "10.0.0.1/24" in an ipBlock and means
 * 10.0.0.0/24.
 */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIp(s.slice(0, slash));
  const lenText = s.slice(slash + 1);
  if (!ip || !/^(0|[1-9]\d{0,2})$/.test(lenText)) return undefined;
  const len = Number(lenText);
  if (len > familyBits(ip.family)) return undefined;
  return { family: ip.family, addr: ip.value & prefixMask(ip.family, len), len };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp({ family: c.family, value: c.addr })}/${c.len}`;
}

export function cidrContainsIp(c: Cidr, ip: IpAddress): boolean {
  return ip.family === c.family && (ip.value & prefixMask(c.family, c.len)) === c.addr;
}

/** Whether every address of `inner` is in `outer` (equal counts); never across families. */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.family === outer.family && inner.len >= outer.len && (inner.addr & prefixMask(outer.family, outer.len)) === outer.addr;
}

/** The prefix of length `len` that contains `c`. */
export function truncateCidr(c: Cidr, len: number): Cidr {
  return { family: c.family, addr: c.addr & prefixMask(c.family, len), len };
}

/** "ip:port", with an IPv6 address in brackets ("[fd00::1]:80") so the port stays readable. */
export function formatHostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
