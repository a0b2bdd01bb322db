import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../store/index.js';
import { readSnapshot, statusKey } from './state.js';
import { deltaFor, desiredFor, nodeKey, type NodeDesired } from './nodes.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

const asMap = (d: NodeDesired) => new Map(d.entries.map((e) => [e.key, e.value]));

for (const seed of [11, 12, 13, 14]) {
  test(`a node's view kept by deltas equals its full view after every change (seed ${seed})`, async () => {
    const dir = mkdtempSync(join(tmpdir(), `ebmesh-delta-${process.pid}-`));
    try {
      const r = rng(seed);
      const s = new EmbeddedStore(join(dir, 'store.json'));
      const nodes = [{ name: 'node-1', index: 0 }, { name: 'node-2', index: 1 }];
      await s.commit(nodes.map((n) => ({ type: 'put' as const, key: nodeKey(n.name), value: n })));
      const log: Array<{ revision: number; keys: string[] }> = [];
      s.watch((ev) => log.push({ revision: ev.revision, keys: ev.ops.map((o) => o.key) }));
      const first = await readSnapshot(s);
      const views = new Map(nodes.map((n) => [n.name, { rev: first.revision, view: asMap(desiredFor(first, n, nodes)) }]));
      for (let step = 0; step < 150; step++) {
        const name = `w${Math.floor(r() * 12)}`;
        const x = r();
        const node = r() < 0.5 ? 'node-1' : r() < 0.8 ? 'node-2' : undefined;
        if (x < 0.4) {
          await s.commit([{ type: 'put', key: `/resources/Workload/d/${name}`, value: {
            apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload', metadata: { name, namespace: 'd', labels: { app: 'web' } },
            spec: { ...(node ? { node } : {}), command: ['sleep', 'infinity'], env: { SECRET: 's' }, ports: [{ containerPort: 8080, protocol: 'TCP' }] } } }]);
        } else if (x < 0.55) {
          await s.commit([{ type: 'delete', key: `/resources/Workload/d/${name}` }, { type: 'delete', key: statusKey('Workload', 'd', name) }]);
        } else if (x < 0.85) {
          await s.commit([{ type: 'put', key: statusKey('Workload', 'd', name), value: { phase: 'Running', ready: r() < 0.5, pid: 42, message: 'x', node } }]);
        } else {
          const sv = `s${Math.floor(r() * 3)}`;
          await s.commit([{ type: 'put', key: `/resources/Service/d/${sv}`, value: {
            apiVersion: 'v1', kind: 'Service', metadata: { name: sv, namespace: 'd' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, protocol: 'TCP' }] } } }]);
        }
        const snap = await readSnapshot(s);
        for (const n of nodes) {
          // Nodes catch up at different paces: sometimes skip revisions.
          if (r() < 0.3 && step < 149) continue;
          const v = views.get(n.name)!;
          const keys = log.filter((e) => e.revision > v.rev && e.revision <= snap.revision).flatMap((e) => e.keys);
          const d = deltaFor(snap, n, nodes, v.rev, keys);
          assert.equal(d.delta!.from, v.rev);
          for (const e of d.delta!.ops) { if (e.value === undefined) v.view.delete(e.key); else v.view.set(e.key, e.value); }
          v.rev = d.revision;
          const full = desiredFor(snap, n, nodes);
          assert.deepEqual(new Map([...v.view].sort()), new Map([...asMap(full)].sort()), `seed ${seed} step ${step} ${n.name}`);
          assert.deepEqual(d.local, full.local);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
