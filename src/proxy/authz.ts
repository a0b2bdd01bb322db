/**
 * L7 authorization by identity (AuthorizationPolicy, docs/l7-policy.md).
 * DENY policies are checked first: any matching rule denies. Then, if any
 * ALLOW policy targets the request, some ALLOW rule must match, else the
 * request is denied by that policy's implicit "default-deny".
 */
import type { AuthorizationPolicyResource } from '../resources/traffic.js';
import { headerValue, type RequestFacts } from './route-match.js';

export interface AuthzSubject {
  identity: string;
  namespace: string;
}

export type AuthzVerdict = { allowed: true } | { allowed: false; policy: string; rule: string };

type Check = (s: AuthzSubject, r: RequestFacts) => boolean;

interface CompiledRule {
  name: string;
  test: Check;
}

export interface CompiledAuthzPolicy {
  key: string;
  action: 'ALLOW' | 'DENY';
  rules: CompiledRule[];
}

/** "x*" is a prefix match, "*" anything, otherwise exact. */
function glob(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  return pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : pattern === value;
}
const anyOf = (patterns: string[] | undefined, value: string): boolean => patterns === undefined || patterns.some((p) => glob(p, value));
const noneOf = (patterns: string[] | undefined, value: string): boolean => patterns === undefined || !patterns.some((p) => glob(p, value));

type Spec = AuthorizationPolicyResource['spec'];
type RuleSpec = Spec['rules'][number];

function compileRule(rule: RuleSpec): CompiledRule {
  // Within a rule, from/to/when are ANDed; entries inside each list are ORed.
  const from: Check = (s) =>
    rule.from === undefined ||
    rule.from.some((f) => anyOf(f.identities, s.identity) && anyOf(f.namespaces, s.namespace) && noneOf(f.notIdentities, s.identity) && noneOf(f.notNamespaces, s.namespace));
  const to: Check = (_s, r) =>
    rule.to === undefined ||
    rule.to.some((t) => anyOf(t.methods, r.method) && anyOf(t.paths, r.path) && noneOf(t.notMethods, r.method) && noneOf(t.notPaths, r.path));
  const when: Check = (_s, r) =>
    (rule.when ?? []).every((w) => {
      const v = headerValue(r.headers, w.name);
      if (v === undefined) return false;
      return anyOf(w.values, v) && noneOf(w.notValues, v);
    });
  return { name: rule.name, test: (s, r) => from(s, r) && to(s, r) && when(s, r) };
}

export function compileAuthzPolicy(p: AuthorizationPolicyResource): CompiledAuthzPolicy {
  return { key: `${p.metadata.namespace}/${p.metadata.name}`, action: p.spec.action, rules: p.spec.rules.map(compileRule) };
}

const ALLOWED: AuthzVerdict = Object.freeze({ allowed: true });

export function authorize(policies: readonly CompiledAuthzPolicy[], s: AuthzSubject, r: RequestFacts): AuthzVerdict {
  for (const p of policies) {
    if (p.action !== 'DENY') continue;
    const hit = p.rules.find((rule) => rule.test(s, r));
    if (hit) return { allowed: false, policy: p.key, rule: hit.name };
  }
  // No array and no verdict object built per request (this runs for every one, nearly always with no ALLOW policy).
  let firstAllow: CompiledAuthzPolicy | undefined;
  for (const p of policies) {
    if (p.action !== 'ALLOW') continue;
    firstAllow ??= p;
    if (p.rules.some((rule) => rule.test(s, r))) return ALLOWED;
  }
  if (firstAllow === undefined) return ALLOWED;
  return { allowed: false, policy: firstAllow.key, rule: 'default-deny' };
}
