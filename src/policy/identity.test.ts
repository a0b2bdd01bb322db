import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, type WorkloadResource } from '../resources/schemas.js';
import { isEbmeshError } from '../errors.js';
import {
  FIRST_ALLOCATED_IDENTITY, IDENTITY_HOST, IDENTITY_WORLD, IdentityIndex, allocateIdentities, buildIpCache, identityKey,
} from './identity.js';

const wl = (name: string, ns: string, labels: Record<string, string>, ip?: string): WorkloadResource => Workload.parse({
  apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload', metadata: { name, namespace: ns, labels }, spec: { command: ['true'], ...(ip ? { ip } : {}) },
});

test('reserved identities are what the kernel expects', () => {
  assert.equal(IDENTITY_HOST, 1);
  assert.equal(IDENTITY_WORLD, 2);
  assert.equal(FIRST_ALLOCATED_IDENTITY, 256);
});

test('identityKey ignores label order and cannot be fooled by separators', () => {
  assert.equal(identityKey('x', { a: '1', b: '2' }), identityKey('x', { b: '2', a: '1' }));
  assert.notEqual(identityKey('x', { a: '1' }), identityKey('y', { a: '1' }));
  assert.notEqual(identityKey('x', { 'a': '1,b=2' }), identityKey('x', { a: '1', b: '2' }));
  assert.equal(identityKey('x', undefined), identityKey('x', {}));
});

test('same namespace and labels share one identity; anything else differs', () => {
  const ws = [wl('a1', 'x', { app: 'a' }), wl('a2', 'x', { app: 'a' }), wl('a3', 'y', { app: 'a' }), wl('b', 'x', { app: 'a', v: '2' })];
  const t = allocateIdentities(undefined, ws, { now: 0 });
  const ix = new IdentityIndex(t);
  const ids = ws.map((w) => ix.ofWorkload(w));
  assert.equal(ids[0], ids[1]);
  assert.equal(new Set(ids).size, 3);
  assert.ok(ids.every((id) => id >= FIRST_ALLOCATED_IDENTITY));
});

test('allocation is deterministic and independent of input order', () => {
  const ws = [wl('a', 'x', { app: 'a' }), wl('b', 'x', { app: 'b' }), wl('c', 'y', { app: 'c' })];
  assert.deepEqual(allocateIdentities(undefined, ws, { now: 0 }), allocateIdentities(undefined, [...ws].reverse(), { now: 0 }));
});

test('existing ids survive a restart and new keys do not disturb them', () => {
  const t1 = allocateIdentities(undefined, [wl('b', 'x', { app: 'b' }), wl('c', 'x', { app: 'c' })], { now: 0 });
  // "a" sorts before "b" and "c": a fresh allocation would give it the first id, but the table wins.
  const persisted = JSON.parse(JSON.stringify(t1));
  const t2 = allocateIdentities(persisted, [wl('a', 'x', { app: 'a' }), wl('b', 'x', { app: 'b' }), wl('c', 'x', { app: 'c' })], { now: 1 });
  const ix1 = new IdentityIndex(t1);
  const ix2 = new IdentityIndex(t2);
  assert.equal(ix2.of('x', { app: 'b' }), ix1.of('x', { app: 'b' }));
  assert.equal(ix2.of('x', { app: 'c' }), ix1.of('x', { app: 'c' }));
  assert.equal(ix2.of('x', { app: 'a' }), FIRST_ALLOCATED_IDENTITY + 2);
});

test('a released id is not reused for another label set within the grace period', () => {
  const t1 = allocateIdentities(undefined, [wl('a', 'x', { app: 'a' })], { now: 0 });
  const old = new IdentityIndex(t1).of('x', { app: 'a' })!;
  const t2 = allocateIdentities(t1, [], { now: 1000, graceMs: 60_000 });
  assert.deepEqual(t2.entries, []);
  assert.deepEqual(t2.released.map((r) => r.id), [old]);
  const t3 = allocateIdentities(t2, [wl('b', 'x', { app: 'b' })], { now: 30_000, graceMs: 60_000 });
  assert.notEqual(new IdentityIndex(t3).of('x', { app: 'b' }), old);
  // After the grace period the id is free again.
  const t4 = allocateIdentities(allocateIdentities(t3, [], { now: 200_000, graceMs: 60_000 }), [wl('c', 'x', { app: 'c' })], { now: 400_000, graceMs: 60_000 });
  assert.equal(new IdentityIndex(t4).of('x', { app: 'c' }), old);
});

test('the same label set coming back within grace gets its old id', () => {
  const t1 = allocateIdentities(undefined, [wl('a', 'x', { app: 'a' }), wl('z', 'x', { app: 'z' })], { now: 0 });
  const old = new IdentityIndex(t1).of('x', { app: 'z' });
  const t2 = allocateIdentities(t1, [wl('a', 'x', { app: 'a' })], { now: 10 });
  const t3 = allocateIdentities(t2, [wl('a', 'x', { app: 'a' }), wl('z2', 'x', { app: 'z' })], { now: 20 });
  assert.equal(new IdentityIndex(t3).of('x', { app: 'z' }), old);
  assert.deepEqual(t3.released, []);
});

test('a corrupt table is refused', () => {
  assert.throws(() => new IdentityIndex({ version: 1, released: [], entries: [{ id: 300, namespace: 'x', labels: {} }, { id: 300, namespace: 'y', labels: {} }] }), (e) => isEbmeshError(e, 'EBMESH_IDENTITY_TABLE_INVALID'));
  assert.throws(() => new IdentityIndex({ version: 1, released: [], entries: [{ id: 2, namespace: 'x', labels: {} }] }), (e) => isEbmeshError(e, 'EBMESH_IDENTITY_TABLE_INVALID'));
});

test('ipcache: workload addresses to identities, host addresses to 1, conflicts refused', () => {
  const ws = [wl('a', 'x', { app: 'a' }, '10.0.0.2'), wl('b', 'x', { app: 'a' }, '10.0.0.3'), wl('c', 'x', {})];
  const t = allocateIdentities(undefined, ws, { now: 0 });
  const id = new IdentityIndex(t).of('x', { app: 'a' });
  assert.deepEqual(buildIpCache(ws, t, ['10.0.0.1']), [
    { ip: '10.0.0.1', identity: IDENTITY_HOST, workload: '(host)' },
    { ip: '10.0.0.2', identity: id, workload: 'x/a' },
    { ip: '10.0.0.3', identity: id, workload: 'x/b' },
  ]);
  const dup = [...ws, wl('d', 'y', {}, '10.0.0.2')];
  assert.throws(() => buildIpCache(dup, allocateIdentities(undefined, dup, { now: 0 })), (e) => isEbmeshError(e, 'EBMESH_IP_CONFLICT') && /y\/d and x\/a/.test((e as Error).message));
  assert.throws(() => buildIpCache(ws, allocateIdentities(undefined, [], { now: 0 })), (e) => isEbmeshError(e, 'EBMESH_IDENTITY_MISSING'));
});
