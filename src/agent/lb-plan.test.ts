import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planLb, type KernelLb, type LbOp } from './lb-plan.js';
import type { DesiredFrontend } from '../controlplane/index.js';

function empty(): KernelLb {
  return { frontends: [], slots: new Map(), backends: new Map() };
}

const fkey = (k: { vip: string; port: number; proto: number }) => `${k.vip}:${k.port}/${k.proto}`;

/** Applies ops one by one like the kernel maps would, checking after each that connect() can never pick a dangling slot. */
function applyChecked(state: KernelLb, ops: LbOp[]): KernelLb {
  const s: KernelLb = { frontends: state.frontends.map((f) => ({ ...f })), slots: new Map([...state.slots].map(([k, v]) => [k, new Map(v)])), backends: new Map(state.backends) };
  const removed = new Set<number>();
  for (const o of ops) {
    switch (o.op) {
      case 'putBackend': s.backends.set(o.id, o.backend); break;
      case 'delBackend': s.backends.delete(o.id); removed.add(o.id); break;
      case 'putSlot': { const m = s.slots.get(o.frontendId) ?? new Map(); m.set(o.slot, o.backendId); s.slots.set(o.frontendId, m); break; }
      case 'delSlot': s.slots.get(o.frontendId)?.delete(o.slot); break;
      case 'putFrontend': s.frontends = [...s.frontends.filter((f) => fkey(f.key) !== fkey(o.key)), { key: o.key, value: o.value }]; break;
      case 'delFrontend': s.frontends = s.frontends.filter((f) => fkey(f.key) !== fkey(o.key)); break;
    }
    for (const f of s.frontends) {
      for (let i = 0; i < f.value.count; i++) {
        const bid = s.slots.get(f.value.id)?.get(i);
        assert.ok(bid !== undefined, `after ${JSON.stringify(o)}: slot ${i} of frontend ${f.value.id} missing`);
        assert.ok(s.backends.has(bid), `after ${JSON.stringify(o)}: slot ${i} names deleted backend ${bid}`);
      }
    }
  }
  return s;
}

const fe = (vip: string, ips: string[], extra: Partial<DesiredFrontend> = {}): DesiredFrontend => ({
  service: 'd/web', vip, port: 80, proto: 'TCP', backends: ips.map((ip) => ({ ip, port: 8080, workload: `d/${ip}` })), ...extra,
});

test('from empty to a frontend with three backends, then no change is no op', () => {
  const desired = [fe('10.96.0.1', ['10.0.0.1', '10.0.0.2', '10.0.0.3'])];
  const s = applyChecked(empty(), planLb(empty(), desired));
  assert.equal(s.frontends[0]?.value.count, 3);
  assert.equal(s.backends.size, 3);
  assert.deepEqual(planLb(s, desired), []);
});

test('removing a backend never leaves a slot naming it, and frees it', () => {
  let s = applyChecked(empty(), planLb(empty(), [fe('10.96.0.1', ['10.0.0.1', '10.0.0.2', '10.0.0.3'])]));
  s = applyChecked(s, planLb(s, [fe('10.96.0.1', ['10.0.0.1', '10.0.0.3'])]));
  assert.equal(s.frontends[0]?.value.count, 2);
  assert.deepEqual([...s.backends.values()].map((b) => b.ip).sort(), ['10.0.0.1', '10.0.0.3']);
  assert.equal(s.slots.get(s.frontends[0]!.value.id)?.size, 2);
});

test('ids are stable: an unchanged backend keeps its id across changes', () => {
  let s = applyChecked(empty(), planLb(empty(), [fe('10.96.0.1', ['10.0.0.1', '10.0.0.2'])]));
  const idOf = (st: KernelLb, ip: string) => [...st.backends].find(([, b]) => b.ip === ip)?.[0];
  const before = idOf(s, '10.0.0.2');
  s = applyChecked(s, planLb(s, [fe('10.96.0.1', ['10.0.0.2', '10.0.0.9'])]));
  assert.equal(idOf(s, '10.0.0.2'), before);
});

test('deleting a service removes its frontend, slots and backends; a shared backend stays', () => {
  let s = applyChecked(empty(), planLb(empty(), [fe('10.96.0.1', ['10.0.0.1']), fe('10.96.0.2', ['10.0.0.1', '10.0.0.2'])]));
  s = applyChecked(s, planLb(s, [fe('10.96.0.1', ['10.0.0.1'])]));
  assert.equal(s.frontends.length, 1);
  assert.deepEqual([...s.backends.values()].map((b) => b.ip), ['10.0.0.1']);
  assert.deepEqual([...s.slots.keys()].filter((k) => (s.slots.get(k)?.size ?? 0) > 0), [s.frontends[0]!.value.id]);
});

test('session affinity and an empty backend set are carried to the frontend value', () => {
  const s = applyChecked(empty(), planLb(empty(), [fe('10.96.0.1', [], { affinityTimeout: 30 })]));
  assert.deepEqual(s.frontends[0]?.value, { id: 1, count: 0, flags: 1, affinity_timeout: 30 });
});

test('the mirror of the LB maps follows every plan exactly as the maps do', async () => {
  const { applyToMirror } = await import('./lb-maps.js');
  let seed = 7;
  const r = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  let kernel = empty();
  const mirror = { frontends: new Map<string, KernelLb['frontends'][number]>(), slots: new Map<number, Map<number, number>>(), backends: new Map<number, { ip: string; port: number; proto: number }>() };
  for (let step = 0; step < 200; step++) {
    const desired: DesiredFrontend[] = [];
    for (let s = 0; s < 6; s++) {
      if (r() < 0.2) continue;
      const n = Math.floor(r() * 5);
      desired.push({ service: `d/s${s}`, vip: `10.96.0.${s + 1}`, port: 80, proto: 'TCP', ...(r() < 0.3 ? { affinityTimeout: 60 } : {}),
        backends: Array.from({ length: n }, (_, i) => ({ ip: `10.244.0.${1 + Math.floor(r() * 10)}`, port: 8080 + i, workload: `d/w${i}` })) });
    }
    const fromMirror = { frontends: [...mirror.frontends.values()], slots: mirror.slots, backends: mirror.backends };
    const ops = planLb(fromMirror, desired);
    const sorted = (o: LbOp[]) => o.map((x) => JSON.stringify(x)).sort();
    assert.deepEqual(sorted(ops), sorted(planLb(kernel, desired)), `step ${step}: a plan from the mirror differs from one from the maps`);
    kernel = applyChecked(kernel, ops);
    applyToMirror(mirror, ops);
    const norm = (k: KernelLb) => ({
      frontends: [...k.frontends].map((f) => ({ key: f.key, value: f.value })).sort((a, b) => (fkey(a.key) < fkey(b.key) ? -1 : 1)),
      slots: [...k.slots].filter(([, m]) => m.size).map(([id, m]) => [id, [...m].sort((a, b) => a[0] - b[0])]).sort((a, b) => (a[0] as number) - (b[0] as number)),
      backends: [...k.backends].sort((a, b) => a[0] - b[0]),
    });
    assert.deepEqual(norm({ frontends: [...mirror.frontends.values()], slots: mirror.slots, backends: mirror.backends }), norm(kernel), `step ${step}`);
  }
});
