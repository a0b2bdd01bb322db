/**
 * Flows: the kernel's ebm_flow_event records, decoded and named.
 *
 * Everything here is pure: the kernel record in, a Flow (what `observe`
 * prints and /v1/flows serves) out, with the names from a table built from
 * the control plane's snapshot. No I/O, so it is unit-tested without root.
 */
import { EventFlag, EventType, FlowEvent, HttpMethods, Reason, RULE_NONE, Verdict, type ValueOf } from '../abi/structs.js';
import { formatHostPort } from '../resources/ip.js';

export type RawFlowEvent = ValueOf<typeof FlowEvent>;

export type FlowType = 'connect' | 'accept' | 'close' | 'drop' | 'http';
export type VerdictName = 'FORWARDED' | 'DROPPED' | 'ERROR' | 'AUDIT';

export interface Endpoint {
  ip: string;
  port: number;
  namespace?: string;
  workload?: string;
  identity?: number;
  labels?: Record<string, string>;
}

export interface Flow {
  /** Per-agent sequence number: gaps never happen, lost events are counted. */
  seq: number;
  time: string;
  type: FlowType;
  verdict: VerdictName;
  /** Kebab-case reason code name; absent when there is none. */
  reason?: string;
  proto: 'TCP' | 'UDP' | string;
  /** Which end's socket reported it. */
  observer: 'client' | 'server';
  source: Endpoint;
  destination: Endpoint;
  /** namespace/name of the Service, when dialled through its VIP or when the destination backs one. */
  service?: string;
  /** The VIP:port dialled, when there was one. */
  vip?: string;
  cookie: string;
  /** close: bytes from the source to the destination and back. */
  bytes?: { toDestination: number; toSource: number };
  durationMs?: number;
  srttUs?: number;
  retransmits?: number;
  shortcut?: boolean;
  /** drop: where it was judged, at a socket call (connect/sendmsg) or per packet. */
  hook?: 'socket' | 'skb-egress' | 'skb-ingress';
  /** drop by policy: the deciding policy (`name` is namespace/name when the agent knows it) and rule. */
  policy?: { ref: number; rule: number; name?: string };
  http?: { method: string; path: string; status: number; latencyMs: number };
  /** Carried over the cross-node mTLS tunnel: the peer node's SPIFFE ID and the caller's workload identity. */
  mtls?: boolean;
  peerIdentity?: string;
  sourceIdentity?: string;
}

const TYPE_NAMES: Record<number, FlowType> = {
  [EventType.CONNECT]: 'connect', [EventType.ACCEPT]: 'accept', [EventType.CLOSE]: 'close',
  [EventType.DROP]: 'drop', [EventType.HTTP]: 'http',
};
const VERDICT_NAMES: Record<number, VerdictName> = {
  [Verdict.FORWARDED]: 'FORWARDED', [Verdict.DROPPED]: 'DROPPED', [Verdict.ERROR]: 'ERROR', [Verdict.AUDIT]: 'AUDIT',
};
const REASON_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Reason).map(([k, v]) => [v, k.toLowerCase().replace(/_/g, '-')]),
);

export function typeName(code: number): FlowType {
  return TYPE_NAMES[code] ?? 'drop';
}

export function verdictName(code: number): VerdictName {
  return VERDICT_NAMES[code] ?? 'ERROR';
}

export function methodName(code: number): string {
  return HttpMethods[code] ?? 'OTHER';
}

export function reasonName(code: number): string | undefined {
  if (code === Reason.NONE) return undefined;
  return REASON_NAMES[code] ?? `reason-${code}`;
}

/** What the agent knows about addresses, from the control plane's snapshot. */
export interface NameTable {
  /** workload IP -> its names */
  byIp: Map<string, { namespace: string; workload: string; identity?: number; labels?: Record<string, string> }>;
  /** cgroup id (decimal) -> workload, for events that carry no source address yet */
  byCgroup: Map<string, { namespace: string; workload: string; ip?: string; ipv6?: string }>;
  /** "vip:port" ("[vip]:port" for IPv6, formatHostPort) -> Service namespace/name */
  byVip: Map<string, string>;
  /** "backendIp:port" (formatHostPort) -> Service namespace/name, for connections that did not use the VIP */
  byBackend: Map<string, string>;
  /** policy_ref -> namespace/name of the policy, as the agent's compiled tables number them */
  policies: readonly string[];
}

export function emptyNames(): NameTable {
  return { byIp: new Map(), byCgroup: new Map(), byVip: new Map(), byBackend: new Map(), policies: [] };
}

function endpoint(ip: string, port: number, names: NameTable): Endpoint {
  const w = names.byIp.get(ip);
  const e: Endpoint = { ip, port };
  if (w) {
    e.namespace = w.namespace;
    e.workload = w.workload;
    if (w.identity !== undefined) e.identity = w.identity;
    if (w.labels) e.labels = w.labels;
  }
  return e;
}

/**
 * Turns a kernel record into a Flow. `bootOffsetNs` converts the kernel's
 * monotonic clock to wall time (epoch ns minus monotonic ns at one instant).
 */
export function toFlow(raw: RawFlowEvent, seq: number, names: NameTable, bootOffsetNs: bigint): Flow {
  const type = typeName(raw.type);
  const active = (raw.flags & EventFlag.ACTIVE) !== 0;
  const inbound = (raw.flags & EventFlag.INBOUND) !== 0;
  const observer: Flow['observer'] = type === 'http'
    ? ((raw.flags & EventFlag.SERVER) !== 0 ? 'server' : 'client')
    : type === 'accept' || (type === 'close' && !active) || (type === 'drop' && inbound) ? 'server' : 'client';
  const source = endpoint(raw.saddr, raw.sport, names);
  if (!source.workload && raw.cgroup_id !== 0n) {
    // A drop at connect() has no source address yet: its cgroup names it.
    const w = names.byCgroup.get(raw.cgroup_id.toString());
    if (w) {
      source.namespace = w.namespace;
      source.workload = w.workload;
      // The flow's family is its destination's (always known): the source's address of that family.
      const own = raw.daddr.includes(':') ? w.ipv6 : w.ip;
      if (source.ip === '0.0.0.0' && own) source.ip = own;
      const byIp = own ? names.byIp.get(own) : undefined;
      if (byIp?.identity !== undefined) source.identity = byIp.identity;
    }
  }
  const destination = endpoint(raw.daddr, raw.dport, names);
  if (raw.src_identity) source.identity = raw.src_identity;
  if (raw.dst_identity) destination.identity = raw.dst_identity;
  const ms = Number(raw.ts_ns + bootOffsetNs) / 1e6;
  const flow: Flow = {
    seq,
    time: new Date(ms).toISOString(),
    type,
    verdict: verdictName(raw.verdict),
    proto: raw.proto === 6 ? 'TCP' : raw.proto === 17 ? 'UDP' : String(raw.proto),
    observer,
    source,
    destination,
    cookie: raw.cookie.toString(),
  };
  const reason = reasonName(raw.reason);
  if (reason) flow.reason = reason;
  if (raw.orig_daddr !== '0.0.0.0') {
    flow.vip = formatHostPort(raw.orig_daddr, raw.orig_dport);
    const svc = names.byVip.get(flow.vip);
    if (svc) flow.service = svc;
  }
  if (!flow.service && type !== 'drop') {
    const svc = names.byBackend.get(formatHostPort(raw.daddr, raw.dport));
    if (svc) flow.service = svc;
  }
  if (type === 'close') {
    // The kernel counts from the observing socket; flows count from the source.
    const sent = Number(raw.bytes_sent);
    const received = Number(raw.bytes_received);
    flow.bytes = active ? { toDestination: sent, toSource: received } : { toDestination: received, toSource: sent };
    flow.durationMs = Number(raw.duration_ns) / 1e6;
    flow.srttUs = raw.srtt_us;
    flow.retransmits = raw.retransmits;
  }
  if ((raw.flags & EventFlag.SHORTCUT) !== 0) flow.shortcut = true;
  if (type === 'drop') flow.hook = (raw.flags & EventFlag.PACKET) === 0 ? 'socket' : inbound ? 'skb-ingress' : 'skb-egress';
  if (raw.policy_ref) {
    const policyName = names.policies[raw.policy_ref];
    flow.policy = { ref: raw.policy_ref, rule: raw.policy_rule, ...(policyName ? { name: policyName } : {}) };
  }
  if (type === 'http') {
    flow.http = {
      method: methodName(raw.http_method),
      path: raw.http_path.subarray(0, Math.min(raw.http_path_len, raw.http_path.length)).toString('latin1'),
      status: raw.http_status,
      latencyMs: Number(raw.duration_ns) / 1e6,
    };
  }
  return flow;
}

// ---- filters ----------------------------------------------------------------

export interface FlowFilter {
  from?: string;
  to?: string;
  namespace?: string;
  verdict?: string;
  protocol?: string;
  status?: string;
  type?: string;
  /** reason names, comma-separated; a trailing * matches a prefix (policy-*) */
  reason?: string;
  /** only flows with seq greater than this */
  since?: number;
}

export const FILTER_KEYS = ['from', 'to', 'namespace', 'verdict', 'protocol', 'status', 'type', 'reason'] as const;

export function filterFromQuery(q: URLSearchParams): FlowFilter {
  const f: FlowFilter = {};
  for (const k of FILTER_KEYS) {
    const v = q.get(k);
    if (v) f[k] = v;
  }
  const since = q.get('since');
  if (since) f.since = Number(since);
  return f;
}

/**
 * An endpoint matches a selector given as an IP, a workload name,
 * namespace/workload, or (for the destination) a Service as svc:NS/NAME or
 * NS/NAME.
 */
function endpointMatches(e: Endpoint, sel: string, service?: string): boolean {
  if (sel === e.ip) return true;
  const [a, b] = sel.startsWith('svc:') ? [undefined, undefined] : sel.split('/');
  if (b === undefined && a !== undefined && e.workload === a) return true;
  if (b !== undefined && e.namespace === a && e.workload === b) return true;
  if (service) {
    const s = sel.startsWith('svc:') ? sel.slice(4) : sel;
    if (s === service || service.endsWith(`/${s}`)) return true;
  }
  return false;
}

function statusMatches(status: number, spec: string): boolean {
  const m = /^([1-5])xx$/i.exec(spec);
  if (m) return Math.floor(status / 100) === Number(m[1]);
  return String(status) === spec;
}

function reasonMatches(reason: string | undefined, spec: string): boolean {
  if (!reason) return false;
  return spec.split(',').some((s) => (s.endsWith('*') ? reason.startsWith(s.slice(0, -1)) : reason === s));
}

export function matches(f: Flow, filter: FlowFilter): boolean {
  if (filter.since !== undefined && f.seq <= filter.since) return false;
  if (filter.from && !endpointMatches(f.source, filter.from)) return false;
  if (filter.to && !endpointMatches(f.destination, filter.to, f.service)) return false;
  if (filter.namespace && f.source.namespace !== filter.namespace && f.destination.namespace !== filter.namespace) return false;
  if (filter.verdict && f.verdict !== filter.verdict.toUpperCase()) return false;
  if (filter.type && f.type !== filter.type.toLowerCase()) return false;
  if (filter.protocol) {
    const p = filter.protocol.toLowerCase();
    if (p === 'http' ? f.type !== 'http' : f.proto.toLowerCase() !== p) return false;
  }
  if (filter.status && (!f.http || !statusMatches(f.http.status, filter.status))) return false;
  if (filter.reason && !reasonMatches(f.reason, filter.reason.toLowerCase())) return false;
  return true;
}

/**
 * Whether a record with this raw type and verdict can match `filter` at all:
 * checked before a stored record is decoded, so that a scan of the history
 * decodes only the candidates. matches() still decides.
 */
export function mayMatchRaw(type: number, verdict: number, filter: FlowFilter): boolean {
  if (filter.type && typeName(type) !== filter.type.toLowerCase()) return false;
  if (filter.verdict && verdictName(verdict) !== filter.verdict.toUpperCase()) return false;
  if (filter.status && type !== EventType.HTTP) return false;
  if (filter.protocol?.toLowerCase() === 'http' && type !== EventType.HTTP) return false;
  return true;
}

// ---- one line per flow, for people ------------------------------------------

function name(e: Endpoint): string {
  return e.workload ? `${e.namespace}/${e.workload}` : e.ip;
}

export function flowLine(f: Flow): string {
  const t = f.time.slice(11, 23);
  const src = formatHostPort(name(f.source), f.source.port);
  let dst = formatHostPort(name(f.destination), f.destination.port);
  if (f.service) dst += ` (${f.service})`;
  else if (f.vip) dst += ` (${f.vip})`;
  const head = `${t}  ${src.padEnd(28)} -> ${dst.padEnd(40)}`;
  switch (f.type) {
    case 'http':
      return `${head} HTTP ${f.http!.method} ${f.http!.path} ${f.http!.status} ${f.http!.latencyMs.toFixed(2)}ms`;
    case 'drop':
      return `${head} ${f.verdict} ${f.proto} ${f.reason ?? ''}${f.policy ? ` policy=${f.policy.name ?? f.policy.ref}${f.policy.rule === RULE_NONE ? '' : `#${f.policy.rule}`}` : ''}`;
    case 'close':
      return `${head} ${f.verdict === 'FORWARDED' ? 'closed' : `${f.verdict} ${f.reason ?? ''}`} ${f.proto} ` +
        `${f.bytes!.toDestination}B/${f.bytes!.toSource}B ${f.durationMs!.toFixed(1)}ms` +
        // Flows seen in user space (the mTLS tunnel) have no kernel socket statistics.
        `${f.srttUs !== undefined ? ` rtt=${f.srttUs}us retrans=${f.retransmits}` : ''}` +
        `${f.shortcut ? ' shortcut' : ''}${f.mtls ? ` mtls=true peer=${f.peerIdentity ?? '?'} src=${f.sourceIdentity ?? '?'}` : ''} [${f.observer}]`;
    default:
      return `${head} ${f.type === 'connect' ? 'connected' : 'accepted'} ${f.proto} [${f.observer}]`;
  }
}
