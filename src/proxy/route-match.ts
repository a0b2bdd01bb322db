/**
 * Pure route matching. Every (route, rule, match) attached to a service is
 * flattened into one list sorted once by the Gateway API precedence rules, so
 * a request is matched by walking the list and taking the first hit.
 */
import type { HeaderMatch, HTTPRouteMatch } from '../resources/gateway.js';

export interface RequestFacts {
  method: string;
  /** Path without the query string. */
  path: string;
  query: URLSearchParams;
  /** Lower-case names. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  host: string;
  grpc: boolean;
}

export interface CompiledMatch {
  test(r: RequestFacts): boolean;
  /** For ReplacePrefixMatch: the prefix this match consumed. */
  prefix: string | undefined;
  /** Sort key, most specific first. */
  rank: number[];
}

export function headerValue(h: RequestFacts['headers'], name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v.join(',') : v;
}

function anchored(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}

function compileHeader(m: HeaderMatch): (r: RequestFacts) => boolean {
  const name = m.name.toLowerCase();
  if (m.type === 'RegularExpression') {
    const re = anchored(m.value);
    return (r) => {
      const v = headerValue(r.headers, name);
      return v !== undefined && re.test(v);
    };
  }
  return (r) => headerValue(r.headers, name) === m.value;
}

/** PathPrefix matches whole path elements: "/foo" matches "/foo" and "/foo/x", not "/foobar". */
export function prefixMatches(prefix: string, path: string): boolean {
  const p = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  if (p === '/') return true;
  return path === p || path.startsWith(p + '/');
}

// Path kinds ranked: Exact beats RegularExpression beats PathPrefix (regex
// precedence is implementation-specific in Gateway API; this is the common choice).
const PATH_RANK = { Exact: 3, RegularExpression: 2, PathPrefix: 1 } as const;

export function compileHttpMatch(m: HTTPRouteMatch): CompiledMatch {
  const tests: ((r: RequestFacts) => boolean)[] = [];
  const path = m.path ?? { type: 'PathPrefix' as const, value: '/' };
  if (path.type === 'Exact') tests.push((r) => r.path === path.value);
  else if (path.type === 'PathPrefix') tests.push((r) => prefixMatches(path.value, r.path));
  else {
    const re = anchored(path.value);
    tests.push((r) => re.test(r.path));
  }
  if (m.method) {
    const method = m.method;
    tests.push((r) => r.method === method);
  }
  for (const h of m.headers ?? []) tests.push(compileHeader(h));
  for (const q of m.queryParams ?? []) {
    if (q.type === 'RegularExpression') {
      const re = anchored(q.value);
      tests.push((r) => {
        const v = r.query.get(q.name);
        return v !== null && re.test(v);
      });
    } else tests.push((r) => r.query.get(q.name) === q.value);
  }
  return {
    test: (r) => tests.every((t) => t(r)),
    prefix: path.type === 'PathPrefix' ? path.value : undefined,
    rank: [PATH_RANK[path.type], path.type === 'RegularExpression' ? 0 : path.value.length, m.method ? 1 : 0, m.headers?.length ?? 0, m.queryParams?.length ?? 0],
  };
}

export interface GrpcMatchInput {
  method?: { type: 'Exact' | 'RegularExpression'; service?: string | undefined; method?: string | undefined } | undefined;
  headers?: HeaderMatch[] | undefined;
}

/** gRPC calls are POST /<service>/<method>. */
export function compileGrpcMatch(m: GrpcMatchInput): CompiledMatch {
  const tests: ((r: RequestFacts) => boolean)[] = [(r) => r.grpc];
  const mm = m.method;
  if (mm) {
    const svc = mm.service === undefined ? undefined : mm.type === 'Exact' ? mm.service : anchored(mm.service);
    const meth = mm.method === undefined ? undefined : mm.type === 'Exact' ? mm.method : anchored(mm.method);
    tests.push((r) => {
      const parts = r.path.split('/');
      if (parts.length !== 3 || parts[0] !== '') return false;
      const [, s = '', me = ''] = parts;
      const ok = (want: string | RegExp | undefined, got: string): boolean => want === undefined || (typeof want === 'string' ? want === got : want.test(got));
      return ok(svc, s) && ok(meth, me);
    });
  }
  for (const h of m.headers ?? []) tests.push(compileHeader(h));
  const exactness = mm ? (mm.type === 'Exact' ? 2 : 1) : 0;
  const specificity = mm ? (mm.service ? 1 : 0) + (mm.method ? 1 : 0) : 0;
  return { test: (r) => tests.every((t) => t(r)), prefix: undefined, rank: [exactness, specificity, m.headers?.length ?? 0] };
}

/** Compares rank arrays: higher first, then the caller's tie-break order. */
export function compareRank(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (b[i] ?? 0) - (a[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function hostMatches(hostnames: readonly string[] | undefined, host: string): boolean {
  if (!hostnames || hostnames.length === 0) return true;
  const h = host.replace(/:\d+$/, '').toLowerCase();
  return hostnames.some((n) => (n.startsWith('*.') ? h.endsWith(n.slice(1)) && h.length > n.length - 1 : h === n.toLowerCase()));
}
