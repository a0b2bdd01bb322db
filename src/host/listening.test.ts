import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { listensIn, tcpListens } from './listening.js';

const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:3A99 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 01F4FE0A:3A99 0900F40A:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
`;

test('a listener is found by its address and port; an established socket on the port is not one; the wildcard listens on every address', () => {
  assert.equal(listensIn(table, '127.0.0.1', 15001), true);
  assert.equal(listensIn(table, '10.254.244.1', 15001), false, 'row 1 is ESTABLISHED');
  assert.equal(listensIn(table, '127.0.0.2', 15001), false);
  assert.equal(listensIn(table, '10.1.2.3', 8080), true);
  assert.equal(listensIn('', '127.0.0.1', 1), false);
});

test('reads this namespace: a server on loopback is seen while it listens, not after', async () => {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  assert.equal(tcpListens('127.0.0.1', port), true);
  await new Promise<void>((r) => s.close(() => r()));
  assert.equal(tcpListens('127.0.0.1', port), false);
});
