import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { withStore } from '../../test/helpers/store.js';
import { parseResources, type AnyResource } from '../resources/index.js';
import { PACKAGE_ROOT } from '../paths.js';
import { applyResources } from './apply.js';
import { readSnapshot, statusKey, storeKey, RESOURCES } from './state.js';
import { remoteView } from './nodes.js';
import { checkStoredResource, RejectedLog } from './stored.js';
import { planNode } from '../agent/plan.js';
import { emptyIdentityTable } from '../policy/index.js';

const web = `apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: web, namespace: d, labels: {app: web}}
spec: {command: [sleep, infinity], ports: [{name: http, containerPort: 8080}]}
`;

/** A Workload as someone might write it into etcd by hand, beside apply. */
const handWritten = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload', metadata: { name, namespace: 'd' }, spec,
});

test('a hand-written Workload that fails its schema is left out and reported; the valid ones stay', withStore(async (store) => {
  await applyResources(store, parseResources(web));
  await store.commit([
    // command must be a list of strings: this one would run through a shell.
    { type: 'put', key: `${RESOURCES}Workload/d/evil`, value: handWritten('evil', { command: 'touch /tmp/owned' }) },
    // an unknown field, a name that is not a DNS label (it becomes a path), and not an object at all
    { type: 'put', key: `${RESOURCES}Workload/d/odd`, value: handWritten('odd', { command: ['true'], privileged: true }) },
    { type: 'put', key: `${RESOURCES}Workload/d/x`, value: handWritten('../../etc', { command: ['true'] }) },
    { type: 'put', key: `${RESOURCES}Workload/d/str`, value: 'sleep infinity' },
    { type: 'put', key: `${RESOURCES}Pod/d/p`, value: { kind: 'Pod' } },
  ]);
  const snap = await readSnapshot(store);
  assert.deepEqual(snap.workloads.map((w) => w.metadata.name), ['web']);
  const rejected = new Map((snap.rejected ?? []).map((r) => [r.key, r.problem]));
  assert.deepEqual([...rejected.keys()].sort(), [`${RESOURCES}Pod/d/p`, `${RESOURCES}Workload/d/evil`, `${RESOURCES}Workload/d/odd`, `${RESOURCES}Workload/d/str`, `${RESOURCES}Workload/d/x`]);
  assert.match(rejected.get(`${RESOURCES}Workload/d/evil`)!, /Workload\.spec\.command: Expected array/);
  assert.match(rejected.get(`${RESOURCES}Workload/d/odd`)!, /privileged/);
  assert.match(rejected.get(`${RESOURCES}Workload/d/x`)!, /metadata\.name/);
  assert.match(rejected.get(`${RESOURCES}Pod/d/p`)!, /known kind/);
  // Nothing rejected reaches a plan: the node runs web alone.
  const plan = planNode(snap, {
    nodeName: 'node-1', nodeIndex: 0, routePodCIDR: false, nodes: [{ name: 'node-1', index: 0 }], nodeAddress: () => '',
    cgroupRoot: '/cg', meshCgroup: '/cg/m', svidDir: '/s',
  }, { nodeSvid: false, identities: emptyIdentityTable() });
  assert.deepEqual(plan.lab.map((w) => w.metadata.name), ['web']);
}));

test('a resource under another resource\'s key is left out', withStore(async (store) => {
  const [w] = parseResources(web);
  await store.commit([{ type: 'put', key: `${RESOURCES}Workload/d/other`, value: w }]);
  const snap = await readSnapshot(store);
  assert.equal(snap.workloads.length, 0);
  assert.match(snap.rejected?.[0]?.problem ?? '', /holds Workload\/d\/web, not what its key names/);
}));

test('a workload status of the wrong shape is left out (the lab kills and deletes what a status names)', withStore(async (store) => {
  await applyResources(store, parseResources(web));
  await store.commit([
    { type: 'put', key: statusKey('Workload', 'd', 'web'), value: { phase: 'Running', pid: -1, cgroup: 7 } },
    { type: 'put', key: statusKey('Workload', 'd', 'other'), value: { phase: 'Running', ip: '10.244.0.9', pid: 42 } },
  ]);
  const snap = await readSnapshot(store);
  assert.equal(snap.workloadStatus.has('d/web'), false);
  assert.equal(snap.workloadStatus.get('d/other')?.pid, 42);
  assert.match(snap.rejected?.map((r) => `${r.key} ${r.problem}`).join('\n') ?? '', /Workload\/d\/web status\.pid.*status\.cgroup/s);
}));

test("a node's view: another node's workload may carry nothing to run, its own must be whole", withStore(async (store) => {
  await applyResources(store, parseResources(web));
  const [w] = (await readSnapshot(store)).workloads;
  const far = remoteView({ ...w!, metadata: { ...w!.metadata, name: 'far' }, spec: { ...w!.spec, node: 'node-2' } });
  const farWithCommand = { ...far, metadata: { ...far.metadata, name: 'sneaky' }, spec: { ...far.spec, command: ['touch', '/tmp/owned'] } };
  const strippedLocal = { ...far, metadata: { ...far.metadata, name: 'mine' } };
  for (const r of [far, farWithCommand, strippedLocal]) await store.commit([{ type: 'put', key: storeKey(r), value: r }]);
  const snap = await readSnapshot(store, { localWorkloads: new Set(['d/web', 'd/mine']) });
  assert.deepEqual(snap.workloads.map((x) => x.metadata.name).sort(), ['far', 'web']);
  const rejected = Object.fromEntries((snap.rejected ?? []).map((r) => [r.key, r.problem]));
  assert.match(rejected[`${RESOURCES}Workload/d/sneaky`] ?? '', /command/);
  assert.match(rejected[`${RESOURCES}Workload/d/mine`] ?? '', /needs a command/);
  // Without a view (the embedded store, the control plane), a stripped Workload is not a Workload.
  assert.equal((await readSnapshot(store)).workloads.some((x) => x.metadata.name === 'far'), false);
}));

test('an unchanged stored value gives the same checked object on every read (readers compare objects)', withStore(async (store) => {
  await applyResources(store, parseResources(web));
  const a = await readSnapshot(store);
  const b = await readSnapshot(store);
  assert.equal(a.workloads[0], b.workloads[0]);
  assert.ok(Object.isFrozen(a.workloads[0]!.spec), 'checked values are frozen like the stored ones');
}));

/** Every resource in the examples and in the docs' YAML blocks. */
function documented(): AnyResource[] {
  const out: AnyResource[] = [];
  for (const f of readdirSync(join(PACKAGE_ROOT, 'examples'))) out.push(...parseResources(readFileSync(join(PACKAGE_ROOT, 'examples', f), 'utf8'), f));
  for (const f of readdirSync(join(PACKAGE_ROOT, 'docs')).filter((x) => x.endsWith('.md'))) {
    const text = readFileSync(join(PACKAGE_ROOT, 'docs', f), 'utf8');
    for (const m of text.matchAll(/```yaml\n([\s\S]*?)```/g)) {
      try { out.push(...parseResources(m[1]!, f)); } catch { /* a fragment, not whole resources */ }
    }
  }
  return out;
}

test('every resource apply accepts is accepted again when read back, unchanged', () => {
  const all = documented();
  assert.ok(all.length > 10, `found ${all.length} resources`);
  for (const r of all) {
    const stored = JSON.parse(JSON.stringify(r)) as unknown;
    const c = checkStoredResource(storeKey(r), stored, RESOURCES);
    assert.ok('ok' in c, `${storeKey(r)}: ${'problem' in c ? c.problem : ''}`);
    assert.deepEqual(c.ok, r);
  }
});

test('a rejected entry is logged once while it stays rejected, and again if it comes back', () => {
  const lines: string[] = [];
  const log = new RejectedLog((l) => lines.push(l));
  const bad = [{ key: '/resources/Workload/d/x', problem: 'spec.command: Required' }];
  log.note(bad);
  log.note(bad);
  log.note([]);
  log.note(bad);
  assert.deepEqual(lines, ['store: left out /resources/Workload/d/x: spec.command: Required\n', 'store: left out /resources/Workload/d/x: spec.command: Required\n']);
});
