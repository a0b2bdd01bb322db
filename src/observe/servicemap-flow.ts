/**
 * The flow record the service map consumes: one JSON object per flow as
 * GET /v1/flows answers it (the observe part owns that endpoint and the ring
 * buffer behind it: src/observe/flow.ts there, `{seq, time, type, verdict:
 * FORWARDED|DROPPED|ERROR|AUDIT, reason, proto, source, destination,
 * service: "ns/name", http: {method, path, status, latencyMs}}`). Only the
 * fields below are read; a DROPPED flow whose reason is policy-* is denied. normalizeFlow accepts
 * the few spellings an event format tends to go through while it settles
 * (flat or nested endpoints, ms or ns latencies), so the map does not break
 * on a rename; anything it cannot place is left out of the map, not guessed.
 */

export type FlowVerdict = 'forwarded' | 'denied' | 'dropped' | 'error';

export interface FlowEndpoint {
  ip?: string;
  port?: number;
  namespace?: string;
  workload?: string;
  /** Numeric security identity, when the data path reports it. */
  identity?: number;
}

/** What the data path saw: a connection made/accepted/ended, a drop, or one HTTP exchange. */
export type FlowType = 'connect' | 'accept' | 'close' | 'drop' | 'http';

export interface Flow {
  /** ISO 8601. */
  time: string;
  type?: FlowType;
  verdict: FlowVerdict;
  /** 'tcp', 'udp', 'http'… (lower case). */
  protocol: string;
  source: FlowEndpoint;
  destination: FlowEndpoint;
  /** Set when the connection was made to a Service address (the socket LB chose `destination`). */
  service?: { namespace: string; name: string; ip?: string; port?: number };
  http?: { method?: string; path?: string; status?: number };
  latencyMs?: number;
  /** Drop or error reason as the data path names it. */
  reason?: string;
}

type Json = Record<string, unknown>;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && v !== '' && Number.isFinite(Number(v)) ? Number(v) : undefined);
const obj = (v: unknown): Json | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);

function splitRef(ref: string | undefined): { namespace?: string; workload?: string } {
  if (!ref) return {};
  const i = ref.indexOf('/');
  return i < 0 ? { workload: ref } : { namespace: ref.slice(0, i), workload: ref.slice(i + 1) };
}

function endpoint(f: Json, side: 'source' | 'destination'): FlowEndpoint {
  const short = side === 'source' ? 'src' : 'dst';
  const o = obj(f[side]) ?? obj(f[short]) ?? {};
  const ref = splitRef(str(o.ref) ?? str(o.name) ?? (typeof f[side] === 'string' ? (f[side] as string) : undefined));
  const e: FlowEndpoint = {
    ip: str(o.ip) ?? str(o.addr) ?? str(f[`${short}Ip`]) ?? str(f[`${short}IP`]),
    port: num(o.port) ?? num(f[`${short}Port`]),
    namespace: str(o.namespace) ?? str(o.ns) ?? ref.namespace,
    workload: str(o.workload) ?? str(o.pod) ?? ref.workload,
    identity: num(o.identity),
  };
  for (const k of Object.keys(e) as Array<keyof FlowEndpoint>) if (e[k] === undefined) delete e[k];
  return e;
}

const TYPES: readonly string[] = ['connect', 'accept', 'close', 'drop', 'http'];

/** A drop whose reason is policy is shown as denied: that is the difference people look for. */
function verdictOf(f: Json): FlowVerdict {
  const v = (str(f.verdict) ?? str(f.action) ?? 'forwarded').toLowerCase();
  const reason = (str(f.reason) ?? str(f.dropReason) ?? '').toLowerCase();
  if (v.startsWith('den') || v.startsWith('policy')) return 'denied';
  if (v.startsWith('drop')) return reason.includes('policy') ? 'denied' : 'dropped';
  if (v.startsWith('err')) return 'error';
  return 'forwarded';
}

/** One flow from /v1/flows, or undefined when it is not a flow record at all. */
export function normalizeFlow(raw: unknown): Flow | undefined {
  const f = obj(raw);
  if (!f) return undefined;
  const timeRaw = f.time ?? f.ts ?? f.timestamp;
  const time = typeof timeRaw === 'number' ? new Date(timeRaw > 1e14 ? timeRaw / 1e6 : timeRaw).toISOString() : str(timeRaw);
  if (!time) return undefined;
  const l7 = obj(f.http) ?? obj(f.l7);
  const svcRaw = f.service;
  const svcObj = obj(svcRaw);
  const svcRef = svcObj ? undefined : splitRef(str(svcRaw));
  const source = endpoint(f, 'source');
  const destination = endpoint(f, 'destination');
  const flow: Flow = {
    time,
    verdict: verdictOf(f),
    protocol: (str(f.protocol) ?? str(f.proto) ?? (l7 ? 'http' : 'tcp')).toLowerCase(),
    source,
    destination,
  };
  const type = (str(f.type) ?? str(f.event) ?? '').toLowerCase();
  if (TYPES.includes(type)) flow.type = type as FlowType;
  // observe reports an HTTP exchange as type http over proto TCP; the table and the filter call it http
  if (flow.type === 'http') flow.protocol = 'http';
  if (svcObj && str(svcObj.name)) {
    flow.service = { namespace: str(svcObj.namespace) ?? destination.namespace ?? 'default', name: str(svcObj.name)! };
    if (str(svcObj.ip)) flow.service.ip = str(svcObj.ip);
    if (num(svcObj.port) !== undefined) flow.service.port = num(svcObj.port);
  } else if (svcRef?.workload) {
    flow.service = { namespace: svcRef.namespace ?? destination.namespace ?? 'default', name: svcRef.workload };
  }
  if (l7) {
    flow.http = {};
    if (str(l7.method)) flow.http.method = str(l7.method);
    if (str(l7.path) ?? str(l7.url)) flow.http.path = str(l7.path) ?? str(l7.url);
    const status = num(l7.status) ?? num(l7.code);
    if (status !== undefined) flow.http.status = status;
  }
  const ms = num(f.latencyMs) ?? num(l7?.latencyMs);
  const us = num(f.latencyUs) ?? num(l7?.latencyUs);
  const ns = num(f.latencyNs) ?? num(l7?.latencyNs);
  const latency = ms ?? (us !== undefined ? us / 1e3 : ns !== undefined ? ns / 1e6 : undefined);
  if (latency !== undefined) flow.latencyMs = latency;
  const reason = str(f.reason) ?? str(f.dropReason) ?? str(f.error);
  if (reason) flow.reason = reason;
  return flow;
}

/** The list of flows in a /v1/flows answer (an array, or {flows}/{items}). */
export function flowsOf(answer: unknown): Flow[] {
  const a = obj(answer);
  const list = Array.isArray(answer) ? answer : Array.isArray(a?.flows) ? (a!.flows as unknown[]) : Array.isArray(a?.items) ? (a!.items as unknown[]) : [];
  return list.map(normalizeFlow).filter((f): f is Flow => f !== undefined);
}

/** Failed = denied or dropped by the data path, an error, or an HTTP 5xx. */
export function flowFailed(f: Flow): boolean {
  return f.verdict !== 'forwarded' || (f.http?.status !== undefined && f.http.status >= 500);
}
