/**
 * Connection-specific header fields (RFC 9110 7.6.1): the fixed list, and
 * the fields a Connection header names. Every place that forwards a head
 * (header objects, an upstream head as strings, an upstream head as bytes,
 * the client's request lines) asks here.
 */
import { withoutOws } from './ows.js';

/** Never forwarded (Host is the proxy's to write). */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings', 'host']);

// Nearly every Connection field is exactly one of these: shared sets, nothing built per message.
const ONLY_CLOSE: ReadonlySet<string> = new Set(['close']);
const ONLY_KEEP_ALIVE: ReadonlySet<string> = new Set(['keep-alive']);

/**
 * The lower-case options (field names) a Connection value lists, undefined
 * when it lists none. "close" names the reserved field Close, so that goes too.
 */
export function namedInConnection(v: string | string[] | undefined): ReadonlySet<string> | undefined {
  if (v === undefined) return undefined;
  const s = String(v).toLowerCase();
  if (s === 'keep-alive') return ONLY_KEEP_ALIVE;
  if (s === 'close') return ONLY_CLOSE;
  let named: Set<string> | undefined;
  for (const t of s.split(',')) {
    const name = withoutOws(t);
    if (name) (named ??= new Set()).add(name);
  }
  return named;
}

/** Whether a field (lower-case name) stays behind at this hop. */
export const dropsField = (lower: string, named: ReadonlySet<string> | undefined): boolean => HOP_BY_HOP.has(lower) || (named !== undefined && named.has(lower));
