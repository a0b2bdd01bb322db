/**
 * IPv4 addresses and prefixes as unsigned 32-bit numbers: the compiler, both
 * evaluators and the schema all reason about containment, and doing it on
 * numbers (not strings) is what keeps "is this except inside that block"
 * a one-line, obviously-correct check.
 */

export interface Cidr {
  /** Network address, host bits cleared, as an unsigned 32-bit number. */
  readonly addr: number;
  /** Prefix length, 0..32. */
  readonly len: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function parseIPv4(s: string): number | undefined {
  const parts = s.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((acc, p) => ((acc << 8) | Number(p)) >>> 0, 0);
}

export function formatIPv4(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

export function prefixMask(len: number): number {
  // `<< 32` is a no-op in JS, so /0 needs its own case.
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/**
 * Parses "a.b.c.d/n". Host bits are cleared rather than rejected, as
 * Kubernetes accepts "10.0.0.1/24" in an ipBlock and means 10.0.0.0/24.
 */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIPv4(s.slice(0, slash));
  const lenText = s.slice(slash + 1);
  if (ip === undefined || !/^(3[0-2]|[12]?\d)$/.test(lenText)) return undefined;
  const len = Number(lenText);
  return { addr: (ip & prefixMask(len)) >>> 0, len };
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.addr)}/${c.len}`;
}

export function cidrContainsIp(c: Cidr, ip: number): boolean {
  return ((ip & prefixMask(c.len)) >>> 0) === c.addr;
}

/** Whether every address of `inner` is in `outer` (equal counts). */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.len >= outer.len && ((inner.addr & prefixMask(outer.len)) >>> 0) === outer.addr;
}
