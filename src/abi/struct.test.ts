import { test } from 'node:test';
import assert from 'node:assert/strict';
import { abiStructs, Lb4FrontendKey, Lb4RevnatKey } from './structs.js';

test('codecs lay fields out in network order where the kernel does', () => {
  const buf = Lb4FrontendKey.encode({ vip: '10.96.0.1', port: 80, proto: 6 });
  assert.deepEqual([...buf], [10, 96, 0, 1, 0, 80, 6, 0]);
  assert.deepEqual(Lb4FrontendKey.decode(buf), { vip: '10.96.0.1', port: 80, proto: 6, pad: 0 });
});

test('alignment follows C: a u64 first pads the rest to 8', () => {
  assert.equal(Lb4RevnatKey.size, 16);
  assert.deepEqual(Lb4RevnatKey.layout.map((f) => f.offset), [0, 8, 12, 14]);
});

test('every struct round-trips through its codec', () => {
  for (const c of abiStructs) {
    const zero = c.decode(Buffer.alloc(c.size));
    assert.deepEqual(c.decode(c.encode(zero as never)), zero, c.cname);
  }
});
