/**
 * `policy explain`: would this flow be allowed, and what decided it, for
 * each of the two checks (egress of the source, ingress of the
 * destination). The answer comes from the compiled tables through the same
 * lookups as the kernel, so what explain says is what the data path does;
 * the spec evaluator runs alongside only to list every isolating policy and
 * to flag a disagreement (which would be a compiler bug, or a named-port
 * ambiguity the compiler warned about).
 */
import { parseIp } from '../resources/ip.js';
import { compilePolicies } from './compile.js';
import { allocateIdentities, type IdentityTable } from './identity.js';
import { evaluateSpec, type SpecSide } from './semantics.js';
import type { CompiledTables, Direction, Proto } from './tables.js';
import { flowFamily, PolicyTables, type SideVerdict } from './verdict.js';
import type { Endpoint, Flow, PolicyWorld } from './world.js';

export interface ExplainState extends PolicyWorld {
  /** The live allocation; without it, one is made for this call (ids differ, verdicts do not). */
  identities?: IdentityTable;
  /** Already compiled tables for this state, to skip compiling. */
  tables?: CompiledTables;
}

/**
 * Maps a Service VIP and port to the backend a connection would reach (the
 * socket load balancer rewrites the destination before policy sees it).
 * undefined = not a Service address.
 */
export type ServiceResolver = (ip: string, port: number, proto: Proto) => { to: Endpoint; port: number; service?: string } | undefined;

export interface ExplainOptions {
  resolveService?: ServiceResolver;
  /** The family when both ends are workloads by name (default IPv4); an address given implies its own. */
  family?: 4 | 6;
}

export type Decider = 'loopback' | 'not in mesh' | 'not isolated' | 'rule' | 'isolated, no rule allows';

export interface SideExplanation {
  direction: Direction;
  /** The workload whose policy is consulted; absent when that side is outside the mesh. */
  subject?: string;
  verdict: 'allow' | 'deny';
  decidedBy: Decider;
  /** The policy and rule (0-based index in its ingress/egress list) that allowed. */
  policy?: string;
  rule?: number;
  via?: 'identity' | 'any-peer' | 'cidr';
  /** Every policy that isolates the subject in this direction. */
  isolatedBy: string[];
  text: string;
}

export interface Explanation {
  verdict: 'allow' | 'deny';
  flow: Flow;
  /** Set when `to` was a Service address judged on its backend. */
  service?: { ip: string; port: number; name?: string };
  egress: SideExplanation;
  ingress: SideExplanation;
  /** Non-empty only if the compiled tables and the spec disagree. */
  warnings: string[];
}

export function toEndpoint(s: Endpoint | string): Endpoint {
  if (typeof s !== 'string') return s;
  return parseIp(s) !== undefined ? { ip: s } : { workload: s.includes('/') ? s : `default/${s}` };
}

const DECIDER: Record<SideVerdict['reason'], Decider> = {
  'loopback': 'loopback',
  'not-in-mesh': 'not in mesh',
  'not-isolated': 'not isolated',
  'allowed': 'rule',
  'isolated-no-rule': 'isolated, no rule allows',
};

function describe(direction: Direction, subject: string | undefined, v: SideVerdict, refs: string[], spec: SpecSide): SideExplanation {
  const decidedBy = DECIDER[v.reason];
  const policy = v.entry ? refs[v.entry.policyRef] : undefined;
  const who = subject ?? 'the other side';
  let text: string;
  switch (v.reason) {
    case 'loopback': text = 'a workload may always reach itself'; break;
    case 'not-in-mesh': text = `${direction}: not checked (that side is not a workload in the mesh)`; break;
    case 'not-isolated': text = `${direction} of ${who}: allowed, no policy selects it for ${direction}`; break;
    case 'allowed': text = `${direction} of ${who}: allowed by ${policy} ${direction} rule ${v.entry!.rule}${v.via === 'cidr' ? ' (ipBlock)' : ''}`; break;
    default: {
      const except = v.cidr && v.cidr.group === 0 && v.cidr.policyRef ? ` (address is in an except of ${refs[v.cidr.policyRef]} rule ${v.cidr.rule})` : '';
      text = `${direction} of ${who}: denied, isolated by ${spec.isolatedBy.join(', ') || refs[v.isolatedBy ?? 0]} and no rule allows${except}`;
    }
  }
  return {
    direction, verdict: v.allowed ? 'allow' : 'deny', decidedBy,
    ...(subject ? { subject } : {}),
    ...(policy !== undefined ? { policy, rule: v.entry!.rule, via: v.via! } : {}),
    isolatedBy: spec.isolatedBy, text,
  };
}

/**
 * Explains `from` -> `to` on `port`/`proto`. Endpoints are "namespace/name"
 * (a workload) or an IPv4 or IPv6 address. An address that `resolveService` knows
 * is replaced by its backend and target port first.
 */
export function explain(state: ExplainState, from: Endpoint | string, to: Endpoint | string, port: number, proto: Proto, opts: ExplainOptions = {}): Explanation {
  let dst = toEndpoint(to);
  // Before a Service address is replaced by its backend: the flow keeps the family dialled.
  const family = flowFamily({ from: toEndpoint(from), to: dst, proto, port, ...(opts.family ? { family: opts.family } : {}) });
  let dport = port;
  let service: Explanation['service'];
  if ('ip' in dst && opts.resolveService) {
    const backend = opts.resolveService(dst.ip, port, proto);
    if (backend) {
      service = { ip: dst.ip, port, ...(backend.service ? { name: backend.service } : {}) };
      dst = backend.to;
      dport = backend.port;
    }
  }
  const flow: Flow = { from: toEndpoint(from), to: dst, proto, port: dport, family };
  const tables = state.tables ?? compilePolicies({ ...state, identities: state.identities ?? allocateIdentities(undefined, state.workloads, { now: 0 }) });
  const pt = new PolicyTables(tables);
  const v = pt.verdict(flow);
  const spec = evaluateSpec(state, flow);
  const src = pt.resolve(flow.from, family);
  const dstR = pt.resolve(flow.to, family);
  const warnings: string[] = [];
  if (v.egress.allowed !== spec.egress.allowed || v.ingress.allowed !== spec.ingress.allowed) {
    warnings.push(`compiled tables (${v.allowed ? 'allow' : 'deny'}) and the policy spec (${spec.allowed ? 'allow' : 'deny'}) disagree`
      + (tables.warnings.length ? `; compiler warnings: ${tables.warnings.join('; ')}` : ''));
  }
  return {
    verdict: v.allowed ? 'allow' : 'deny',
    flow,
    ...(service ? { service } : {}),
    egress: describe('egress', src.workload, v.egress, tables.refs, spec.egress),
    ingress: describe('ingress', dstR.workload, v.ingress, tables.refs, spec.ingress),
    warnings,
  };
}
