import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request, startBackend, startProxy, svc, to, type Backend, type Started } from './harness.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: { key: string; value: Record<string, unknown> }[];
}

describe('W3C traceparent and OTLP/HTTP JSON export', () => {
  let b: Backend, p: Started, receiver: http.Server;
  const spans: OtlpSpan[] = [];
  before(async () => {
    // A real (small) OTLP receiver: parses the JSON payload it is sent.
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        assert.equal(req.url, '/v1/traces');
        assert.equal(req.headers['content-type'], 'application/json');
        const payload = JSON.parse(body) as { resourceSpans: { resource: unknown; scopeSpans: { spans: OtlpSpan[] }[] }[] };
        for (const rs of payload.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        res.end('{}');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    b = await startBackend('traced');
    p = await startProxy({
      services: [svc('traced', '10.96.6.1', 80, [b])],
      tracing: { otlpEndpoint: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/traces`, flushIntervalMs: 50 },
    });
  });
  after(async () => {
    await p.proxy.close();
    await b.close();
    receiver.close();
  });

  it('continues an incoming trace: same trace id, the proxy span as the new parent', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const r = await request(p, to('10.96.6.1', 80), { path: '/t', headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    const forwarded = JSON.parse(r.body).headers.traceparent as string;
    const [, fwdTrace, fwdParent] = forwarded.split('-');
    assert.equal(fwdTrace, traceId);
    assert.notEqual(fwdParent, '00f067aa0ba902b7');
    for (let i = 0; i < 40 && !spans.some((s) => s.traceId === traceId); i++) await new Promise((res) => setTimeout(res, 25));
    const span = spans.find((s) => s.traceId === traceId);
    assert.ok(span, 'span exported to the OTLP receiver');
    assert.equal(span.parentSpanId, '00f067aa0ba902b7');
    assert.equal(span.spanId, fwdParent);
    const status = span.attributes.find((a) => a.key === 'http.response.status_code');
    assert.deepEqual(status?.value, { intValue: '200' });
  });

  it('starts a trace when the request has none (or an invalid one)', async () => {
    const r = await request(p, to('10.96.6.1', 80), { path: '/new', headers: { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' } });
    const fwd = JSON.parse(r.body).headers.traceparent as string;
    assert.match(fwd, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.doesNotMatch(fwd, /^00-0{32}/);
    const traceId = fwd.split('-')[1];
    for (let i = 0; i < 40 && !spans.some((s) => s.traceId === traceId); i++) await new Promise((res) => setTimeout(res, 25));
    const span = spans.find((s) => s.traceId === traceId);
    assert.ok(span);
    assert.equal(span.parentSpanId, undefined);
  });
});
