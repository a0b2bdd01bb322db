import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RemoteStore } from './remote-store.js';
import { ApiClient, type Transport } from '../api/client.js';
import type { NodeDesired } from '../controlplane/index.js';

const node = { name: 'node-1', index: 0 };
const full = (revision: number, entries: Record<string, unknown>): NodeDesired =>
  ({ revision, node, nodes: [node], local: [], entries: Object.entries(entries).map(([key, value]) => ({ key, value })) });
const delta = (from: number, revision: number, ops: Record<string, unknown>): NodeDesired =>
  ({ revision, node, nodes: [node], local: [], entries: [], delta: { from, ops: Object.entries(ops).map(([key, value]) => (value === undefined ? { key } : { key, value })) as NodeDesired['entries'] } });

test('the agent store applies deltas on top of its view, asks for a full one on a gap, and saves its view', async () => {
  const dir = mkdtempSync(join(tmpdir(), `ebmesh-remote-${process.pid}-`));
  const answers: NodeDesired[] = [
    full(5, { '/resources/Service/d/a': { n: 1 }, '/resources/Service/d/b': { n: 2 } }),
    delta(5, 7, { '/resources/Service/d/a': { n: 3 }, '/resources/Service/d/b': undefined, '/resources/Service/d/c': { n: 4 } }),
    delta(6, 9, { '/resources/Service/d/z': { n: 9 } }), // does not start at 7: must not be applied
    full(9, { '/resources/Service/d/a': { n: 3 }, '/resources/Service/d/y': { n: 5 } }),
  ];
  const afters: number[] = [];
  let served = 0;
  const transport: Transport = {
    peer: 'a scripted control plane',
    request: async (method: string, path: string) => {
      if (method === 'POST') return { status: 200, text: JSON.stringify({ revision: 0 }) };
      afters.push(Number(/after=(\d+)/.exec(path)![1]));
      const a = answers[served++];
      return a ? { status: 200, text: JSON.stringify(a) } : new Promise(() => undefined); // then the poll waits for good
    },
    stream: async () => undefined,
  };
  const cp = new ApiClient(transport);
  const file = join(dir, 'desired.json');
  const store = new RemoteStore(cp, 'node-1', file, () => ({}));
  try {
    const seen: number[] = [];
    store.watch((ev) => seen.push(ev.revision));
    await store.start(5000);
    while (served < answers.length) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(afters, [0, 5, 7, 0, 9]);
    assert.equal(await store.revision(), 9);
    const list = (await store.list('/resources/')).map((e) => [e.key, e.value]);
    assert.deepEqual(list, [['/resources/Service/d/a', { n: 3 }], ['/resources/Service/d/y', { n: 5 }]]);
    assert.ok(Object.isFrozen((await store.get<object>('/resources/Service/d/a'))!.value), 'values are shared, hence frozen');
    assert.deepEqual(seen, [5, 7, 9]);
    await store.close();
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { desired: NodeDesired };
    assert.equal(saved.desired.revision, 9);
    assert.equal(saved.desired.entries.length, 2);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
