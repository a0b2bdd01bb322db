import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventFlag, EventType, FlowEvent, Verdict } from '../abi/structs.js';
import { emptyNames, toFlow, type Flow } from './flow.js';
import { ObserveMetrics } from './metrics.js';

function names() {
  const n = emptyNames();
  n.byIp.set('10.0.0.2', { namespace: 'demo', workload: 'client' });
  n.byIp.set('10.0.0.3', { namespace: 'demo', workload: 'web-1' });
  n.byVip.set('10.96.0.10:80', 'demo/web');
  return n;
}

function flows(): Flow[] {
  const out: Flow[] = [];
  const statuses = [200, 200, 404, 503, 200, 301];
  for (let i = 0; i < 60; i++) {
    out.push(toFlow(FlowEvent.decode(FlowEvent.encode({
      type: EventType.HTTP, saddr: '10.0.0.2', sport: 40000 + (i % 3), daddr: '10.0.0.3', dport: 8080, proto: 6,
      orig_daddr: i % 2 ? '10.96.0.10' : '0.0.0.0', orig_dport: i % 2 ? 80 : 0,
      http_method: 1 + (i % 4), http_status: statuses[i % statuses.length]!, duration_ns: BigInt(1000 + i * 977_131),
    })), i + 1, names(), 0n));
  }
  out.push(toFlow(FlowEvent.decode(FlowEvent.encode({
    type: EventType.CLOSE, flags: EventFlag.ACTIVE, verdict: Verdict.FORWARDED, saddr: '10.0.0.2', daddr: '10.0.0.3', dport: 8080, proto: 6, bytes_sent: 5n,
  })), 61, names(), 0n));
  return out;
}

// The exposition without the process gauges refresh() would add.
const text = (m: ObserveMetrics) => m.registry.expose();

test('an exchange counted through its connection series is counted as record() counts it', () => {
  const byFlow = new ObserveMetrics();
  const bySeries = new ObserveMetrics();
  const series = new Map<string, ReturnType<ObserveMetrics['httpSeries']>>();
  for (const f of flows()) {
    byFlow.record(f);
    if (f.type !== 'http') {
      bySeries.record(f);
      continue;
    }
    const pair = `${f.source.port}|${f.vip}`;
    let s = series.get(pair);
    if (!s) series.set(pair, (s = bySeries.httpSeries(f)));
    bySeries.recordHttp(s, f.http!.method, f.http!.status, f.http!.latencyMs);
  }
  const t = text(byFlow);
  assert.equal(text(bySeries), t);
  assert.match(t, /ebmesh_http_requests_total\{source_namespace="demo",source_workload="client",destination_namespace="demo",destination_workload="web-1",destination_service="demo\/web",method="HEAD",status_class="2xx"\} \d+/);
  assert.match(t, /ebmesh_flow_events_total\{type="http"\} 60/);
  assert.match(t, /ebmesh_flow_events_total\{type="close"\} 1/);
});
