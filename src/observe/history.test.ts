import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventType, FlowEvent, Verdict } from '../abi/structs.js';
import { emptyNames, mayMatchRaw, matches, toFlow, type FlowFilter, type NameTable } from './flow.js';
import { EVENT_SIZE, FlowHistory } from './history.js';

function named(workload: string): NameTable {
  const n = emptyNames();
  n.byIp.set('10.0.0.2', { namespace: 'demo', workload });
  return n;
}

/** Records laid out as the ring hands them over: at an offset inside a larger buffer. */
function ring(...events: Array<Parameters<typeof FlowEvent.encode>[0]>): Buffer {
  return Buffer.concat([Buffer.alloc(8), ...events.map((e) => FlowEvent.encode(e))]);
}

test('the history keeps the newest records, decodes them on demand, with the names they were read under', () => {
  const h = new FlowHistory(3, 0n);
  const mem = ring(...[1, 2, 3, 4, 5].map((i) => ({ type: EventType.CONNECT, saddr: '10.0.0.2', sport: 40000 + i, daddr: '10.0.0.3', dport: 80, proto: 6 })));
  for (let i = 0; i < 5; i++) assert.equal(h.add(mem, 8 + i * EVENT_SIZE, named(`w${i + 1}`)), i + 1);
  assert.equal(h.length, 3);
  const all = h.last({}, 10);
  assert.deepEqual(all.map((f) => [f.seq, f.source.port, f.source.workload]), [[3, 40003, 'w3'], [4, 40004, 'w4'], [5, 40005, 'w5']]);
  assert.deepEqual(h.last({}, 2).map((f) => f.seq), [4, 5]);
  assert.deepEqual(h.last({ since: 4 }, 10).map((f) => f.seq), [5]);
  assert.deepEqual(h.last({ since: Number.NaN }, 10).map((f) => f.seq), [3, 4, 5]);
  // The record is copied: the ring's space may be reused at once.
  mem.fill(0);
  assert.equal(h.flow(5).source.port, 40005);
});

test('a scan decodes only the records whose type and verdict can match', () => {
  const h = new FlowHistory(8, 0n);
  const mem = ring(
    { type: EventType.HTTP, saddr: '10.0.0.2', daddr: '10.0.0.3', http_status: 503 },
    { type: EventType.DROP, verdict: Verdict.DROPPED, saddr: '10.0.0.2', daddr: '10.0.0.3' },
    { type: EventType.CLOSE, verdict: Verdict.ERROR, saddr: '10.0.0.2', daddr: '10.0.0.3' },
  );
  for (let i = 0; i < 3; i++) h.add(mem, 8 + i * EVENT_SIZE, named('client'));
  assert.deepEqual(h.last({ status: '5xx' }, 10).map((f) => f.type), ['http']);
  assert.deepEqual(h.last({ type: 'drop', verdict: 'dropped' }, 10).map((f) => f.type), ['drop']);
  assert.deepEqual(h.last({ verdict: 'ERROR' }, 10).map((f) => f.type), ['close']);
  assert.deepEqual(h.last({ protocol: 'http' }, 10).map((f) => f.type), ['http']);
});

test('mayMatchRaw never rules out a record that matches', () => {
  const filters: FlowFilter[] = [
    {}, { type: 'http' }, { type: 'DROP' }, { type: 'close' }, { verdict: 'forwarded' }, { verdict: 'DROPPED' }, { verdict: 'error' },
    { status: '2xx' }, { status: '503' }, { protocol: 'http' }, { protocol: 'tcp' }, { type: 'connect', verdict: 'FORWARDED' },
  ];
  for (let type = 0; type <= 7; type++) {
    for (let verdict = 0; verdict <= 5; verdict++) {
      for (const status of [0, 200, 503]) {
        const f = toFlow(FlowEvent.decode(FlowEvent.encode({ type, verdict, http_status: status, proto: 6 })), 1, emptyNames(), 0n);
        for (const filter of filters) {
          if (matches(f, filter)) assert.ok(mayMatchRaw(type, verdict, filter), `type ${type} verdict ${verdict} ${JSON.stringify(filter)}`);
        }
      }
    }
  }
});

test('a record at an offset that is not word-aligned is kept the same', () => {
  const h = new FlowHistory(2, 0n);
  const mem = Buffer.concat([Buffer.alloc(3), FlowEvent.encode({ type: EventType.CONNECT, saddr: '10.0.0.2', sport: 40001, daddr: '10.0.0.3', dport: 80, proto: 6 })]);
  h.add(mem, 3, named('w'));
  assert.deepEqual([h.flow(1).source.port, h.flow(1).destination.ip], [40001, '10.0.0.3']);
});

test('flows built in user space share the sequence and the scans with the kernel records', () => {
  const h = new FlowHistory(3, 0n);
  const mem = ring({ type: EventType.DROP, verdict: Verdict.DROPPED, saddr: '10.0.0.2', daddr: '10.0.0.3' });
  h.add(mem, 8, named('client'));
  const built = h.addFlow((seq) => ({
    seq, time: '2026-01-01T00:00:00.000Z', type: 'close', verdict: 'FORWARDED', proto: 'TCP', observer: 'client',
    source: { ip: '10.0.0.2', port: 1 }, destination: { ip: '10.0.0.9', port: 2 }, cookie: '0', mtls: true,
  }));
  assert.equal(built.seq, 2);
  assert.deepEqual(h.last({ type: 'close' }, 10), [built]);
  assert.deepEqual(h.last({ verdict: 'dropped' }, 10).map((f) => f.seq), [1]);
  // A kernel record that takes the slot over replaces the built flow.
  for (let i = 0; i < 3; i++) h.add(mem, 8, named('client'));
  assert.deepEqual(h.last({}, 10).map((f) => [f.seq, f.type]), [[3, 'drop'], [4, 'drop'], [5, 'drop']]);
});
