import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../store/index.js';
import { parseResources } from '../resources/index.js';
import { applyResources } from './apply.js';
import { readSnapshot } from './state.js';
import { computeFrontends } from './lb.js';
import { desiredFor, nodeKey, type NodeRecord } from './nodes.js';

const wl = (name: string, node: string) =>
  `apiVersion: ebmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: ${name}, namespace: d, labels: {app: web}}\nspec:\n  node: ${node}\n  command: [sleep, infinity]\n  env: {SECRET: s3}\n  ports: [{containerPort: 8080}]\n---\n`;

async function withNodes(fn: (s: EmbeddedStore, nodes: NodeRecord[]) => Promise<void>) {
  const dir = mkdtempSync(join(tmpdir(), 'ebmesh-nodes-'));
  try {
    const s = new EmbeddedStore(join(dir, 'store.json'));
    const nodes = [{ name: 'node-1', index: 0 }, { name: 'node-2', index: 1 }];
    await s.commit(nodes.map((n) => ({ type: 'put' as const, key: nodeKey(n.name), value: n })));
    await fn(s, nodes);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('pod IPs come from the /24 of the workload\'s node; an unknown node is an error', () => withNodes(async (s) => {
  await applyResources(s, parseResources(wl('a', 'node-1') + wl('b', 'node-2')));
  const ips = Object.fromEntries((await readSnapshot(s)).workloads.map((w) => [w.metadata.name, w.spec.ip]));
  assert.deepEqual(ips, { a: '10.244.0.2', b: '10.244.1.2' });
  await assert.rejects(applyResources(s, parseResources(wl('c', 'node-9'))), /spec.node: no node "node-9" in the mesh/);
}));

test("a node's view has every endpoint but only its own workloads' details", () => withNodes(async (s, nodes) => {
  await applyResources(s, parseResources(wl('a', 'node-1') + wl('b', 'node-2') +
    'apiVersion: ebmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: x, namespace: d, labels: {app: web}}\nspec: {node: node-2, external: true, ip: 192.0.2.7, ports: [{containerPort: 8080}]}\n---\n' +
    'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: d}\nspec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n'));
  const snap = await readSnapshot(s);
  const d = desiredFor(snap, nodes[0]!, nodes);
  assert.deepEqual(d.local, ['d/a']);
  const get = (k: string) => d.entries.find((e) => e.key === k)?.value as { spec: Record<string, unknown> };
  assert.deepEqual(get('/resources/Workload/d/a').spec.env, { SECRET: 's3' });
  assert.equal(get('/resources/Workload/d/b').spec.env, undefined);
  assert.equal(get('/resources/Workload/d/b').spec.command, undefined);
  assert.equal(get('/resources/Workload/d/x').spec.external, true);
  // An external endpoint is a backend at once.
  assert.deepEqual(computeFrontends(snap)[0]?.backends.map((b) => b.ip), ['192.0.2.7']);
}));
