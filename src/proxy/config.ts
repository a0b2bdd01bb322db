/**
 * Builds the proxy's validated, immutable configuration once per update
 * (Envoy's split: filter config built once, per-stream state elsewhere).
 * Everything a request needs is resolved here — service lookups, sorted
 * route matches, compiled regexes, policies — so the hot path only reads.
 */
import net from 'node:net';
import { z } from 'zod';
import { EbmeshError } from '../errors.js';
import { GRPCRoute, HTTPRoute, durationMs, type HeaderModifier } from '../resources/gateway.js';
import { AuthorizationPolicy, TrafficPolicy, type TrafficPolicyResource } from '../resources/traffic.js';
import { compileAuthzPolicy, type CompiledAuthzPolicy } from './authz.js';
import { endpointKey } from './dial.js';
import { compareRank, compileGrpcMatch, compileHttpMatch, hostMatches, type CompiledMatch, type RequestFacts } from './route-match.js';
import type { Endpoint, ProxyLimits, ProxyRoutingConfig, ServiceProtocol } from './types.js';
import { DEFAULT_LIMITS } from './limits.js';

export interface TokenBucketSpec {
  capacity: number;
  refillPerMs: number;
}

export interface CompiledTraffic {
  /** State (buckets, breakers, outlier counters) is keyed by this, so it survives updates. */
  key: string;
  rateLimitTotal: TokenBucketSpec | undefined;
  rateLimitPerClient: TokenBucketSpec | undefined;
  breaker: { maxConnections: number; maxPendingRequests: number; maxRequests: number } | undefined;
  outlier: { consecutiveErrors: number; baseMs: number; maxMs: number; maxPercent: number } | undefined;
  fault: { delayMs: number; delayPercent: number; abortStatus: number; abortPercent: number } | undefined;
}

export interface CompiledService {
  key: string;
  name: string;
  namespace: string;
  vip: string;
  port: number;
  protocol: ServiceProtocol;
  endpoints: readonly Endpoint[];
  /** Route matches attached to this service, most specific first. */
  matches: readonly RouteEntry[];
  traffic: CompiledTraffic | undefined;
  authz: readonly CompiledAuthzPolicy[];
}

export interface BackendTarget {
  ref: string;
  service: CompiledService | undefined;
  weight: number;
  /** The backendRef's own header filters: after the rule's, for this backend only. */
  requestHeaders?: HeaderModifier | undefined;
  responseHeaders?: HeaderModifier | undefined;
}

export interface CompiledRule {
  /** ns/route/rule (rule name or index): stable across updates. */
  id: string;
  route: string;
  kind: 'HTTPRoute' | 'GRPCRoute';
  backends: readonly BackendTarget[];
  requestHeaders: HeaderModifier | undefined;
  responseHeaders: HeaderModifier | undefined;
  redirect:
    | { scheme?: string | undefined; hostname?: string | undefined; port?: number | undefined; statusCode: number; path?: { type: 'ReplaceFullPath'; replaceFullPath: string } | { type: 'ReplacePrefixMatch'; replacePrefixMatch: string } | undefined }
    | undefined;
  rewrite: { hostname?: string | undefined; path?: { type: 'ReplaceFullPath'; replaceFullPath: string } | { type: 'ReplacePrefixMatch'; replacePrefixMatch: string } | undefined } | undefined;
  mirrors: readonly { target: BackendTarget; percent: number }[];
  requestTimeoutMs: number;
  backendTimeoutMs: number;
  retry: { codes: ReadonlySet<number>; attempts: number; backoffMs: number } | undefined;
  traffic: CompiledTraffic | undefined;
  authz: readonly CompiledAuthzPolicy[];
}

export interface RouteEntry {
  match: CompiledMatch;
  rule: CompiledRule;
  hostnames: readonly string[] | undefined;
}

export interface CompiledConfig {
  readonly version: number;
  readonly limits: ProxyLimits;
  serviceAt(ip: string, port: number): CompiledService | undefined;
  readonly services: readonly CompiledService[];
}

/** A route filter as the schema leaves it: its type and the field named after it. */
type Filter = { type: string; [k: string]: unknown };

function findFilter<T>(filters: readonly Filter[], type: string, field: string): T | undefined {
  return filters.find((f) => f.type === type)?.[field] as T | undefined;
}

function invalid(message: string, where: string, cause?: unknown): EbmeshError {
  return new EbmeshError('EBMESH_PROXY_CONFIG_INVALID', message, { where, cause, hint: 'the previous proxy configuration stays in force' });
}

function validate<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, items: unknown[] | undefined, what: string): T[] {
  return (items ?? []).map((item, i) => {
    const r = schema.safeParse(item);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      const name = (item as { metadata?: { name?: string } })?.metadata?.name ?? `#${i}`;
      throw invalid(issue.message, `${what} ${name}: ${issue.path.join('.')}`);
    }
    return r.data;
  });
}

function bucket(b: { requests: number; per: string; burst?: number | undefined } | undefined): TokenBucketSpec | undefined {
  if (!b) return undefined;
  return { capacity: b.burst ?? b.requests, refillPerMs: b.requests / Math.max(1, durationMs(b.per)) };
}

function compileTraffic(p: TrafficPolicyResource): CompiledTraffic {
  const s = p.spec;
  return {
    key: `${p.metadata.namespace}/${p.metadata.name}`,
    rateLimitTotal: bucket(s.rateLimit?.total),
    rateLimitPerClient: bucket(s.rateLimit?.perClient),
    breaker: s.circuitBreaker,
    outlier: s.outlierDetection && {
      consecutiveErrors: s.outlierDetection.consecutiveErrors,
      baseMs: durationMs(s.outlierDetection.baseEjectionTime),
      maxMs: durationMs(s.outlierDetection.maxEjectionTime),
      maxPercent: s.outlierDetection.maxEjectionPercent,
    },
    fault: s.fault && {
      delayMs: s.fault.delay ? durationMs(s.fault.delay.fixedDelay) : 0,
      delayPercent: s.fault.delay?.percentage ?? 0,
      abortStatus: s.fault.abort?.httpStatus ?? 0,
      abortPercent: s.fault.abort?.percentage ?? 0,
    },
  };
}

const isIp = (s: string): boolean => net.isIP(s) !== 0;

export function compileConfig(input: ProxyRoutingConfig, version = 1): CompiledConfig {
  const limits: ProxyLimits = Object.freeze({ ...DEFAULT_LIMITS, ...(input.limits ?? {}) });
  for (const [k, v] of Object.entries(limits)) if (!Number.isFinite(v) || v < 0) throw invalid(`must be a non-negative number, got ${v}`, `limits.${k}`);

  const httpRoutes = validate(HTTPRoute, input.httpRoutes, 'HTTPRoute');
  const grpcRoutes = validate(GRPCRoute, input.grpcRoutes, 'GRPCRoute');
  const traffic = validate(TrafficPolicy, input.trafficPolicies, 'TrafficPolicy');
  const authz = validate(AuthorizationPolicy, input.authorizationPolicies, 'AuthorizationPolicy');

  // Policies by target: "Service/ns/name" or "HTTPRoute/ns/name".
  const trafficByTarget = new Map<string, CompiledTraffic>();
  for (const p of traffic) {
    const t = `${p.spec.targetRef.kind}/${p.metadata.namespace}/${p.spec.targetRef.name}`;
    if (trafficByTarget.has(t)) throw invalid(`two TrafficPolicies target ${t}`, `TrafficPolicy ${p.metadata.name}`);
    trafficByTarget.set(t, compileTraffic(p));
  }
  const authzByTarget = new Map<string, CompiledAuthzPolicy[]>();
  for (const p of authz) {
    const t = `${p.spec.targetRef.kind}/${p.metadata.namespace}/${p.spec.targetRef.name}`;
    authzByTarget.set(t, [...(authzByTarget.get(t) ?? []), compileAuthzPolicy(p)]);
  }

  const services: CompiledService[] = [];
  // By address, then port: a request's address string is its connection's (its hash computed once), where an "ip:port" key would be a new string to hash per request.
  const byVip = new Map<string, Map<number, CompiledService>>();
  const byName = new Map<string, CompiledService[]>();
  input.services.forEach((s, i) => {
    const where = `services[${i}] (${s.namespace}/${s.name})`;
    for (const vip of [s.vip, ...(s.vips ?? [])]) if (!isIp(vip)) throw invalid(`vip ${vip} is not an IP address`, where);
    for (const e of s.endpoints) if (!isIp(e.ip) || !(e.port > 0 && e.port < 65536)) throw invalid(`endpoint ${e.ip}:${e.port} is not ip:port`, where);
    const key = `${s.namespace}/${s.name}`;
    const svc: CompiledService = {
      key,
      name: s.name,
      namespace: s.namespace,
      vip: s.vip,
      port: s.port,
      protocol: s.protocol ?? 'auto',
      endpoints: Object.freeze(s.endpoints.map((e) => Object.freeze({ ip: e.ip, port: e.port, key: endpointKey({ ip: e.ip, port: e.port }) }))),
      matches: [],
      traffic: trafficByTarget.get(`Service/${key}`),
      authz: authzByTarget.get(`Service/${key}`) ?? [],
    };
    for (const vip of [s.vip, ...(s.vips ?? [])]) {
      let ports = byVip.get(vip);
      if (!ports) byVip.set(vip, (ports = new Map()));
      if (ports.has(s.port)) throw invalid(`${vip}:${s.port} is listed twice`, where);
      ports.set(s.port, svc);
    }
    byName.set(key, [...(byName.get(key) ?? []), svc]);
    services.push(svc);
  });

  const lookupBackend = (ns: string, name: string, port: number | undefined, parentPort: number): CompiledService | undefined => {
    const ports = byName.get(`${ns}/${name}`) ?? [];
    if (port !== undefined) return ports.find((p) => p.port === port);
    return ports.find((p) => p.port === parentPort) ?? ports[0];
  };

  // Build every route's rules against each parent it attaches to.
  const entries = new Map<CompiledService, { entry: RouteEntry; order: string; idx: number }[]>();
  type AnyRoute = (typeof httpRoutes)[number] | (typeof grpcRoutes)[number];
  const routes: AnyRoute[] = [...httpRoutes, ...grpcRoutes];
  for (const route of routes) {
    const ns = route.metadata.namespace;
    const routeKey = `${ns}/${route.metadata.name}`;
    const routeTraffic = trafficByTarget.get(`${route.kind}/${routeKey}`);
    const routeAuthz = authzByTarget.get(`${route.kind}/${routeKey}`) ?? [];
    for (const parent of route.spec.parentRefs) {
      const parentNs = parent.namespace ?? ns;
      const parents = (byName.get(`${parentNs}/${parent.name}`) ?? []).filter((p) => parent.port === undefined || p.port === parent.port);
      for (const svc of parents) {
        route.spec.rules.forEach((ruleSpec, ri) => {
          const target = (b: { name: string; namespace?: string | undefined; port?: number | undefined; weight?: number; filters?: Filter[] | undefined }): BackendTarget => {
            const own = b.filters ?? [];
            return {
              ref: `${b.namespace ?? ns}/${b.name}${b.port ? `:${b.port}` : ''}`,
              service: lookupBackend(b.namespace ?? ns, b.name, b.port, svc.port),
              weight: b.weight ?? 1,
              requestHeaders: findFilter<HeaderModifier>(own, 'RequestHeaderModifier', 'requestHeaderModifier'),
              responseHeaders: findFilter<HeaderModifier>(own, 'ResponseHeaderModifier', 'responseHeaderModifier'),
            };
          };
          const filters = ruleSpec.filters as Filter[];
          const find = <T>(type: string, field: string): T | undefined => findFilter<T>(filters, type, field);
          const http = route.kind === 'HTTPRoute' ? (ruleSpec as (typeof httpRoutes)[number]['spec']['rules'][number]) : undefined;
          const rule: CompiledRule = Object.freeze({
            id: `${routeKey}/${ruleSpec.name ?? ri}`,
            route: routeKey,
            kind: route.kind,
            backends: ruleSpec.backendRefs.map(target),
            requestHeaders: find<HeaderModifier>('RequestHeaderModifier', 'requestHeaderModifier'),
            responseHeaders: find<HeaderModifier>('ResponseHeaderModifier', 'responseHeaderModifier'),
            redirect: find<CompiledRule['redirect']>('RequestRedirect', 'requestRedirect'),
            rewrite: find<CompiledRule['rewrite']>('URLRewrite', 'urlRewrite'),
            mirrors: filters
              .filter((f) => f.type === 'RequestMirror')
              .map((f) => {
                const m = f['requestMirror'] as { backendRef: { name: string; namespace?: string; port?: number }; percent?: number };
                return { target: target(m.backendRef), percent: m.percent ?? 100 };
              }),
            requestTimeoutMs: http?.timeouts?.request ? durationMs(http.timeouts.request) : 0,
            backendTimeoutMs: http?.timeouts?.backendRequest ? durationMs(http.timeouts.backendRequest) : 0,
            retry: http?.retry && {
              codes: new Set(http.retry.codes ?? []),
              attempts: http.retry.attempts ?? 2,
              backoffMs: http.retry.backoff ? durationMs(http.retry.backoff) : 0,
            },
            traffic: routeTraffic,
            authz: routeAuthz,
          });
          const list = entries.get(svc) ?? [];
          const matches = route.kind === 'HTTPRoute' ? (ruleSpec as { matches: Parameters<typeof compileHttpMatch>[0][] }).matches.map(compileHttpMatch) : (ruleSpec as { matches: Parameters<typeof compileGrpcMatch>[0][] }).matches.map(compileGrpcMatch);
          for (const match of matches) list.push({ entry: { match, rule, hostnames: route.spec.hostnames }, order: `${route.kind === 'GRPCRoute' ? 0 : 1}/${routeKey}`, idx: ri });
          entries.set(svc, list);
        });
      }
    }
  }
  for (const [svc, list] of entries) {
    // Gateway API tie-break: after specificity, the older route wins; we have
    // no creation time, so namespace/name order, then rule order in the route.
    list.sort((a, b) => (a.order[0] !== b.order[0] ? a.order.localeCompare(b.order) : compareRank(a.entry.match.rank, b.entry.match.rank) || a.order.localeCompare(b.order) || a.idx - b.idx));
    (svc as { matches: readonly RouteEntry[] }).matches = Object.freeze(list.map((l) => l.entry));
  }
  for (const s of services) Object.freeze(s);

  return Object.freeze({
    version,
    limits,
    services: Object.freeze(services),
    serviceAt: (ip: string, port: number) => byVip.get(ip)?.get(port),
  });
}

/** The first rule whose match accepts the request, or undefined (then the service's own endpoints serve it). */
export function matchRoute(svc: CompiledService, r: RequestFacts): RouteEntry | undefined {
  // A loop, not find() with a closure: this runs for every request.
  for (const e of svc.matches) if (hostMatches(e.hostnames, r.host) && e.match.test(r)) return e;
  return undefined;
}
