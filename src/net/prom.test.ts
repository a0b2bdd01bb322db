import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Gauge, Histogram, Registry } from './prom.js';

test('exposition: HELP and TYPE once per family, escaped labels, cumulative buckets', () => {
  const r = new Registry();
  const c = r.register(new Counter('x_requests_total', 'Requests.'));
  const g = r.register(new Gauge('x_fill', 'Fill.'));
  const h = r.register(new Histogram('x_seconds', 'Latency.', [0.1, 1]));
  c.inc({ path: 'a"b\\c\nd' });
  c.inc({ path: 'a"b\\c\nd' }, 2);
  c.inc({ empty: '' });
  g.set({ map: 'm' }, 5);
  h.observe({ svc: 's' }, 0.05);
  h.observe({ svc: 's' }, 0.5);
  h.observe({ svc: 's' }, 5);
  assert.equal(r.expose(), [
    '# HELP x_requests_total Requests.',
    '# TYPE x_requests_total counter',
    'x_requests_total{path="a\\"b\\\\c\\nd"} 3',
    'x_requests_total 1',
    '# HELP x_fill Fill.',
    '# TYPE x_fill gauge',
    'x_fill{map="m"} 5',
    '# HELP x_seconds Latency.',
    '# TYPE x_seconds histogram',
    'x_seconds_bucket{svc="s",le="0.1"} 1',
    'x_seconds_bucket{svc="s",le="1"} 2',
    'x_seconds_bucket{svc="s",le="+Inf"} 3',
    'x_seconds_sum{svc="s"} 5.55',
    'x_seconds_count{svc="s"} 3',
    '',
  ].join('\n'));
});

test('a counter name without _total is a programming error', () => {
  assert.throws(() => new Counter('x_requests', 'no'));
});
