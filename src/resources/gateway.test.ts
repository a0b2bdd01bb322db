import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GRPCRoute, HTTPRoute, durationMs } from './gateway.js';
import { AuthorizationPolicy, TrafficPolicy } from './traffic.js';

const base = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r' } };

describe('Gateway API and ebmesh L7 schemas', () => {
  it('accepts a GAMMA HTTPRoute and fills Gateway API defaults', () => {
    const r = HTTPRoute.parse({ ...base, spec: { parentRefs: [{ kind: 'Service', name: 'web' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] } });
    assert.equal(r.metadata.namespace, 'default');
    assert.deepEqual(r.spec.rules[0]!.matches, [{ path: { type: 'PathPrefix', value: '/' } }]);
    assert.equal(r.spec.rules[0]!.backendRefs[0]!.weight, 1);
  });
  it('rejects non-Service parents, unknown fields, bad regexes, bad durations, redirect+rewrite', () => {
    const spec = (s: object) => ({ ...base, spec: { parentRefs: [{ kind: 'Service', name: 'web' }], ...s } });
    assert.equal(HTTPRoute.safeParse({ ...base, spec: { parentRefs: [{ kind: 'Gateway', name: 'gw' }] } }).success, false);
    assert.equal(HTTPRoute.safeParse(spec({ rules: [{ backendRefs: [{ name: 'a' }], bogus: 1 }] })).success, false);
    assert.equal(HTTPRoute.safeParse(spec({ rules: [{ matches: [{ path: { type: 'RegularExpression', value: '(' } }], backendRefs: [{ name: 'a' }] }] })).success, false);
    assert.equal(HTTPRoute.safeParse(spec({ rules: [{ timeouts: { request: '1 second' }, backendRefs: [{ name: 'a' }] }] })).success, false);
    assert.equal(HTTPRoute.safeParse(spec({ rules: [{ timeouts: { request: '1s', backendRequest: '2s' }, backendRefs: [{ name: 'a' }] }] })).success, false);
    const both = [
      { type: 'RequestRedirect', requestRedirect: {} },
      { type: 'URLRewrite', urlRewrite: {} },
    ];
    assert.equal(HTTPRoute.safeParse(spec({ rules: [{ filters: both, backendRefs: [{ name: 'a' }] }] })).success, false);
    assert.equal(HTTPRoute.safeParse(spec({ rules: [{ retry: { codes: [503], attempts: 2, backoff: '100ms' }, backendRefs: [{ name: 'a' }] }] })).success, true);
  });
  it("accepts a backendRef's header filters, each at most once, and refuses its other filters", () => {
    const spec = (filters: object[]) => ({ ...base, spec: { parentRefs: [{ kind: 'Service', name: 'web' }], rules: [{ backendRefs: [{ name: 'a', filters }] }] } });
    const set = { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-a', value: '1' }] } };
    const resp = { type: 'ResponseHeaderModifier', responseHeaderModifier: { remove: ['x-b'] } };
    const ok = HTTPRoute.parse(spec([set, resp]));
    assert.deepEqual(ok.spec.rules[0]!.backendRefs[0]!.filters, [set, resp]);
    const twice = HTTPRoute.safeParse(spec([set, set]));
    assert.equal(twice.success, false);
    assert.match(twice.error!.issues[0]!.message, /RequestHeaderModifier may appear at most once per backendRef/);
    assert.deepEqual(twice.error!.issues[0]!.path, ['spec', 'rules', 0, 'backendRefs', 0, 'filters']);
    assert.equal(HTTPRoute.safeParse(spec([{ type: 'RequestRedirect', requestRedirect: {} }])).success, false);
    const g = GRPCRoute.safeParse({ ...base, kind: 'GRPCRoute', spec: { parentRefs: [{ kind: 'Service', name: 'g' }], rules: [{ backendRefs: [{ name: 'g', filters: [set] }] }] } });
    assert.equal(g.success, true);
  });
  it('parses GRPCRoute method matches', () => {
    const g = GRPCRoute.safeParse({ ...base, kind: 'GRPCRoute', spec: { parentRefs: [{ kind: 'Service', name: 'g' }], rules: [{ matches: [{ method: { service: 'pkg.S' } }], backendRefs: [{ name: 'g' }] }] } });
    assert.equal(g.success, true);
    assert.equal(GRPCRoute.safeParse({ ...base, kind: 'GRPCRoute', spec: { parentRefs: [{ kind: 'Service', name: 'g' }], rules: [{ matches: [{ method: {} }], backendRefs: [{ name: 'g' }] }] } }).success, false);
  });
  it('durations', () => {
    assert.equal(durationMs('1m30s'), 90_000);
    assert.equal(durationMs('250ms'), 250);
    assert.equal(durationMs('1h'), 3_600_000);
  });
  it('TrafficPolicy and AuthorizationPolicy validate their targetRef and rules', () => {
    const tp = { apiVersion: 'ebmesh.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 't' } };
    assert.equal(TrafficPolicy.safeParse({ ...tp, spec: { targetRef: { kind: 'Service', name: 'a' }, rateLimit: { perClient: { requests: 10, per: '1s' } } } }).success, true);
    assert.equal(TrafficPolicy.safeParse({ ...tp, spec: { targetRef: { kind: 'HTTPRoute', name: 'a' } } }).success, false, 'route kinds need the gateway group');
    const ap = { apiVersion: 'ebmesh.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'p' } };
    assert.equal(AuthorizationPolicy.safeParse({ ...ap, spec: { targetRef: { kind: 'Service', name: 'a' }, action: 'DENY', rules: [{ name: 'x' }, { name: 'x' }] } }).success, false, 'duplicate rule names');
  });
});
