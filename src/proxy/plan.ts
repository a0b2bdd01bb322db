/**
 * Decide, then act: from a config snapshot and the request's facts, compute
 * what to do — reject, redirect, or forward to which backend with which
 * rewritten path and headers. Pure except for the injected random source
 * (weighted backend choice), so every branch is unit-testable.
 */
import type { HeaderModifier } from '../resources/gateway.js';
import { authorize, type AuthzSubject } from './authz.js';
import { matchRoute, type BackendTarget, type CompiledConfig, type CompiledRule, type CompiledService, type CompiledTraffic } from './config.js';
import { prefixMatches, type RequestFacts } from './route-match.js';
import type { RejectReason } from './responses.js';
import type { Endpoint } from './types.js';

export type Plan =
  | { kind: 'reject'; reason: RejectReason; detail: string; headers?: Record<string, string>; service: CompiledService | undefined; rule: CompiledRule | undefined; denied?: { policy: string; rule: string } }
  | { kind: 'redirect'; status: number; location: string; service: CompiledService; rule: CompiledRule }
  | {
      kind: 'forward';
      service: CompiledService | undefined;
      rule: CompiledRule | undefined;
      /** The backend service whose endpoints serve it; undefined = the original destination itself. */
      backend: CompiledService | undefined;
      /** The rule's backendRef that was chosen (its own filters apply), when a rule chose one. */
      target: BackendTarget | undefined;
      direct: Endpoint | undefined;
      /** Path + query to send. */
      path: string;
      authority: string;
      traffic: CompiledTraffic | undefined;
    };

/** Weighted random choice (canary splits). Zero-weight backends never win. */
export function pickWeighted(backends: readonly BackendTarget[], rand: () => number): BackendTarget | undefined {
  const total = backends.reduce((n, b) => n + b.weight, 0);
  if (total <= 0) return undefined;
  let x = rand() * total;
  for (const b of backends) {
    if (b.weight <= 0) continue;
    x -= b.weight;
    if (x < 0) return b;
  }
  return [...backends].reverse().find((b) => b.weight > 0);
}

/** Gateway API ReplacePrefixMatch / ReplaceFullPath on the path (query kept). */
export function rewritePath(
  path: string,
  matchedPrefix: string | undefined,
  how: { type: 'ReplaceFullPath'; replaceFullPath: string } | { type: 'ReplacePrefixMatch'; replacePrefixMatch: string } | undefined,
): string {
  if (!how) return path;
  if (how.type === 'ReplaceFullPath') return how.replaceFullPath;
  if (matchedPrefix === undefined || !prefixMatches(matchedPrefix, path)) return path;
  const consumed = matchedPrefix === '/' ? 0 : matchedPrefix.replace(/\/$/, '').length;
  const rest = path.slice(consumed);
  const base = how.replacePrefixMatch.replace(/\/$/, '');
  const out = base + rest;
  return out === '' ? '/' : out.startsWith('/') ? out : '/' + out;
}

export function applyHeaderModifier(headers: Record<string, string | string[] | undefined>, mod: HeaderModifier | undefined): void {
  if (!mod) return;
  for (const { name, value } of mod.set ?? []) headers[name.toLowerCase()] = value;
  for (const { name, value } of mod.add ?? []) {
    const k = name.toLowerCase();
    const cur = headers[k];
    headers[k] = cur === undefined ? value : Array.isArray(cur) ? [...cur, value] : [cur, value];
  }
  for (const name of mod.remove ?? []) delete headers[name.toLowerCase()];
}

export function decide(cfg: CompiledConfig, dst: Endpoint, subject: AuthzSubject, r: RequestFacts, query: string, rand: () => number): Plan {
  const svc = cfg.serviceAt(dst.ip, dst.port);
  if (!svc) {
    // Not a mesh service (e.g. steered for identity only): send it where it was going.
    return { kind: 'forward', service: undefined, rule: undefined, backend: undefined, target: undefined, direct: dst, path: r.path + query, authority: r.host, traffic: undefined };
  }
  const entry = matchRoute(svc, r);
  const rule = entry?.rule;
  if (svc.matches.length > 0 && !entry) return { kind: 'reject', reason: 'no_route', detail: `no route of ${svc.key} matches ${r.method} ${r.path}`, service: svc, rule: undefined };

  const verdict = authorize(rule?.authz.length ? [...svc.authz, ...rule.authz] : svc.authz, subject, r);
  if (!verdict.allowed) {
    return {
      kind: 'reject',
      reason: 'denied',
      detail: `denied by ${verdict.policy} rule ${verdict.rule}`,
      headers: { 'x-ebmesh-denied-by': `${verdict.policy}/${verdict.rule}` },
      service: svc,
      rule,
      denied: { policy: verdict.policy, rule: verdict.rule },
    };
  }

  if (rule?.redirect) {
    const rd = rule.redirect;
    const [hostOnly = '', hostPort] = r.host.split(':');
    const scheme = rd.scheme ?? 'http';
    const port = rd.port ?? (rd.scheme ? undefined : hostPort ? Number(hostPort) : undefined);
    const defaultPort = scheme === 'https' ? 443 : 80;
    const host = (rd.hostname ?? hostOnly) + (port && port !== defaultPort ? `:${port}` : '');
    const path = rewritePath(r.path, entry?.match.prefix, rd.path);
    return { kind: 'redirect', status: rd.statusCode, location: `${scheme}://${host}${path}${query}`, service: svc, rule };
  }

  let backend: CompiledService | undefined = svc;
  let target: BackendTarget | undefined;
  if (rule) {
    const pick = pickWeighted(rule.backends, rand);
    if (!pick) return { kind: 'reject', reason: 'backend_invalid', detail: `rule ${rule.id} has no backend with weight > 0`, service: svc, rule };
    if (!pick.service) return { kind: 'reject', reason: 'backend_invalid', detail: `backend ${pick.ref} is not a known service`, service: svc, rule };
    backend = pick.service;
    target = pick;
  }
  const path = rewritePath(r.path, entry?.match.prefix, rule?.rewrite?.path) + query;
  const authority = rule?.rewrite?.hostname ?? r.host;
  return { kind: 'forward', service: svc, rule, backend, target, direct: undefined, path, authority, traffic: rule?.traffic ?? svc.traffic };
}
