/**
 * The UI's rendering in headless Chromium against a stand-in node API that
 * answers from a recorded minute of the demo (test/fixtures/flows) through
 * the real aggregation. No root, no mesh: this checks what the page does
 * with what the API says (nodes, edge states, denied drawn apart, filters
 * sent to the API as the observe filters, the explain answer); the
 * end-to-end test in test/integration/ui.test.ts checks it on a live mesh.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { startUiServer } from '../../src/ui/server.js';
import { flowsOf } from '../../src/observe/servicemap-flow.js';
import { buildServiceMap, edgeFlows, type MapInput } from '../../src/observe/servicemap.js';
import { launchChromium, type Browser } from '../helpers/browser.js';

const recorded = readFileSync(join(PACKAGE_ROOT, 'test/fixtures/flows/demo.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
const web = (i: number) => ({ namespace: 'demo', name: `web-${i}`, labels: { app: 'web' }, serviceAccount: 'web', ip: `10.245.1.${i + 1}`, phase: 'Running', ready: true });
const input: MapInput = {
  now: Date.parse('2025-01-01T12:00:59.000Z'),
  windowSeconds: 60,
  trustDomain: 'cluster.local',
  workloads: [web(1), web(2), web(3), { namespace: 'demo', name: 'client', labels: { app: 'client' }, serviceAccount: 'client', ip: '10.245.1.5', phase: 'Running', ready: true }],
  services: [{ namespace: 'demo', name: 'web', clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: ['http 80/TCP'] }],
  others: [{ kind: 'NetworkPolicy', metadata: { namespace: 'demo', name: 'web-ingress' }, spec: { podSelector: { matchLabels: { app: 'web' } } } }],
  flows: flowsOf(recorded),
};
// An intruder whose every connection is denied: an edge that is denied and nothing else.
input.workloads.push({ namespace: 'demo', name: 'intruder', labels: { app: 'intruder' }, serviceAccount: 'intruder', ip: '10.245.1.6', phase: 'Running', ready: true });
for (const s of [0, 1, 2]) {
  recorded.push({ time: `2025-01-01T12:00:5${s}.000Z`, type: 'drop', verdict: 'dropped', reason: 'policy-ingress', protocol: 'tcp',
    source: { ip: '10.245.1.6', port: 43000 + s, namespace: 'demo', workload: 'intruder' }, destination: { ...web(3), port: 8080, workload: 'web-3' },
    service: { namespace: 'demo', name: 'web', ip: '10.96.0.10', port: 80 } });
}
input.flows = flowsOf(recorded);

const dir = mkdtempSync(join(tmpdir(), `ebmesh-ui-render-${process.pid}-`));
const queries: URLSearchParams[] = [];
let api: Server;
let ui: Server;
let url = '';
let browser: Browser | undefined;
let page: Page;

function standIn(): Server {
  return createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const json = (v: unknown, status = 200) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(v)); };
    switch (u.pathname) {
      case '/v1/status':
        return json({
          role: 'node', instance: 'standin', node: 'node-1', source: 'a stand-in', pid: process.pid, startedAt: new Date().toISOString(), revision: 7,
          memory: { rss: 0, heapUsed: 0, heapTotal: 0, external: 0 }, mesh: {},
          datapath: { attached: [], counters: {}, drops: {}, maps: [] },
          workloads: input.workloads.map((w) => ({ name: w.name, namespace: w.namespace, phase: w.phase, ready: w.ready })),
          services: input.services.map((v) => ({ name: v.name, namespace: v.namespace, ports: v.ports, endpoints: 1 })),
        });
      case '/v1/resources':
        return json({ items: u.searchParams.get('kind') === 'Service'
          ? [{ kind: 'Service', metadata: { namespace: 'demo', name: 'web' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } }]
          : input.workloads.map((w) => ({ kind: 'Workload', metadata: { namespace: w.namespace, name: w.name }, spec: { ports: [{ containerPort: 8080 }] } })) });
      case '/v1/servicemap':
        return json(buildServiceMap(input));
      case '/v1/servicemap/edge':
        return json({ edge: u.searchParams.get('id'), flows: edgeFlows(input, u.searchParams.get('id') ?? '', 50) });
      case '/v1/flows': {
        queries.push(u.searchParams);
        // The stand-in filters by verdict only: enough to see the page show what the node sends.
        const v = u.searchParams.get('verdict');
        const list = recorded.filter((f) => !v || String(f.verdict).toUpperCase() === v.toUpperCase());
        if (u.searchParams.get('follow') !== '1') return json({ flows: list.slice(0, 20), stats: {} });
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        for (const f of list.slice(20, 40)) res.write(JSON.stringify(f) + '\n');
        return undefined; // stays open, as a follow does
      }
      case '/v1/policy/explain':
        queries.push(u.searchParams);
        return json({ explanations: [1, 2, 3].map((i) => ({
          verdict: 'deny', service: { ip: '10.96.0.10', port: 80, name: 'demo/web' }, flow: { to: { workload: `demo/web-${i}` } }, warnings: [],
          egress: { direction: 'egress', subject: 'demo/client', verdict: 'allow', decidedBy: 'not isolated', isolatedBy: [], text: 'demo/client is not isolated for egress' },
          ingress: { direction: 'ingress', subject: `demo/web-${i}`, verdict: 'deny', decidedBy: 'isolated, no rule allows', isolatedBy: ['demo/web-ingress'], text: 'no rule of demo/web-ingress allows demo/client' },
        })) });
      default:
        return json({ error: { code: 'EBMESH_NOT_FOUND', message: `${req.method} ${u.pathname} not found` } }, 404);
    }
  });
}

before(async () => {
  api = standIn();
  await new Promise<void>((r) => api.listen(join(dir, 'api.sock'), r));
  const s = await startUiServer({ socketPath: join(dir, 'api.sock'), staticDir: join(PACKAGE_ROOT, 'dist/ui'), port: 0, token: 'render-test-token-0123456789' });
  ui = s.server;
  url = s.url;
  browser = await launchChromium();
  page = await browser.context.newPage();
  page.setDefaultTimeout(10_000);
  // As a user does: the address `ebmesh ui` printed, which leaves its token as a cookie.
  await page.goto(s.loginUrl);
});

after(async () => {
  keepScreenshots();
  await browser?.close();
  ui?.closeAllConnections();
  await new Promise((r) => ui?.close(r));
  api?.closeAllConnections();
  await new Promise((r) => api?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

// EBMESH_UI_SHOTS=DIR keeps the screenshots the tests took as DIR/ui-{map,flows,policy}.png (docs/img
// until the end-to-end test, which writes the map and flows ones from a live mesh, has run).
function keepScreenshots(): void {
  const keep = process.env.EBMESH_UI_SHOTS;
  if (!keep) return;
  for (const f of ['map.png', 'flows.png', 'policy.png']) if (existsSync(join(dir, f))) copyFileSync(join(dir, f), join(keep, `ui-${f}`));
}

const edgeState = (id: string) => page.locator(`[data-edge-id="${id}"]`).getAttribute('data-edge-state');

test('map: nodes, edges and their states as the API computed them; denied drawn dashed', async () => {
  await page.goto(url);
  await page.locator('[data-edge-id="wl:demo/client>svc:demo/web"]').waitFor();
  assert.equal(await page.locator('[data-node-id]').count(), 7);
  assert.equal(await page.locator('[data-edge-id]').count(), 7);
  assert.equal(await edgeState('wl:demo/client>svc:demo/web'), 'partly-denied');
  assert.equal(await edgeState('svc:demo/web>wl:demo/web-1'), 'ok');
  assert.equal(await edgeState('svc:demo/web>wl:demo/web-2'), 'partly-denied');
  assert.equal(await edgeState('svc:demo/web>wl:demo/web-3'), 'partly-denied');
  assert.equal(await edgeState('wl:demo/intruder>svc:demo/web'), 'denied');
  const stroke = (id: string, a: string) => page.locator(`[data-edge-id="${id}"] path:not(.hit)`).getAttribute(a);
  assert.ok(await stroke('wl:demo/intruder>svc:demo/web', 'stroke-dasharray'), 'a denied edge is dashed');
  assert.equal(await stroke('wl:demo/intruder>svc:demo/web', 'stroke'), 'var(--denied)');
  assert.equal(await stroke('svc:demo/web>wl:demo/web-1', 'stroke-dasharray'), null);
  assert.equal(await stroke('svc:demo/web>wl:demo/web-1', 'stroke'), 'var(--ok)');
  assert.equal(await stroke('wl:demo/client>wl:demo/web-1', 'stroke'), 'var(--ok)');
  assert.equal(await stroke('wl:demo/client>ext:192.0.2.7', 'stroke'), 'var(--bad)');
  assert.match((await page.locator('[data-edge-id="svc:demo/web>wl:demo/web-2"] .edge-label').textContent()) ?? '', /⊘2 denied/);
  await page.locator('[data-namespace="outside the mesh"]').waitFor();
});

test('node and edge details: golden metrics, identities, policies; an edge\'s recent flows', async () => {
  await page.locator('[data-node-id="svc:demo/web"]').click();
  const m = page.locator('[data-testid="metrics-inbound"]');
  await m.waitFor();
  assert.match((await m.textContent()) ?? '', /success91\.7%/, 'denials stay out of the success rate');
  await page.locator('[data-testid="refs-policies"]', { hasText: 'demo/web-ingress' }).waitFor();
  await page.locator('[data-node-id="svc:demo/web"]').click();
  await page.screenshot({ path: join(dir, 'map.png') });
  await page.locator('[data-edge-id="svc:demo/web>wl:demo/web-2"]').dispatchEvent('click');
  const rows = page.locator('[data-testid="edge-detail"] tr');
  await rows.first().waitFor();
  assert.equal(await page.locator('[data-testid="edge-detail"]').getAttribute('data-edge'), 'svc:demo/web>wl:demo/web-2');
  assert.equal(await rows.first().getAttribute('data-verdict'), 'denied', await page.locator('[data-testid="edge-detail"]').innerHTML());
});

test('flow table: history then the stream; filters go to the API as observe\'s', async () => {
  await page.goto(`${url}#/flows`);
  await page.locator('[data-testid="stream-state"]', { hasText: 'live' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="flow-table"] tbody tr').length >= 40);
  queries.length = 0;
  await page.locator('[data-testid="flow-filters"] [name="verdict"]').selectOption('dropped');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll<HTMLElement>('[data-testid="flow-table"] tbody tr')];
    return rows.length === 5 && rows.every((r) => r.dataset.verdict === 'denied');
  });
  assert.ok(queries.some((q) => q.get('verdict') === 'dropped' && q.get('follow') === '1'));
  assert.ok(queries.some((q) => q.get('verdict') === 'dropped' && q.get('last') === '200'), 'history comes with observe\'s last=N');
  await page.locator('[data-testid="flow-filters"] [name="namespace"]').selectOption('demo');
  await page.locator('[data-testid="flow-filters"] [name="from"]').selectOption('demo/client');
  await page.locator('[data-testid="flow-filters"] [name="to"]').selectOption('svc:demo/web');
  await page.locator('[data-testid="flow-filters"] [name="protocol"]').selectOption('http');
  await page.locator('[data-testid="flow-filters"] [name="status"]').fill('503');
  // Let the new stream's batched render (every 250 ms) land between typing and committing: it must not wipe the typed value.
  await page.waitForTimeout(400);
  await page.locator('[data-testid="flow-filters"] [name="status"]').dispatchEvent('change');
  const until = Date.now() + 5000;
  // The history request (last=N) and the stream (follow=1) go out together, in either order: judge the stream's.
  const stream503 = () => queries.filter((q) => q.get('status') === '503' && q.get('follow') === '1').at(-1);
  while (!stream503() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  const last = stream503() ?? queries.at(-1)!;
  assert.deepEqual(Object.fromEntries([...last].filter(([k]) => k !== 'follow' && k !== 'limit')),
    { namespace: 'demo', from: 'demo/client', to: 'svc:demo/web', verdict: 'dropped', protocol: 'http', status: '503' });
  await page.locator('[data-testid="flow-filters"] [name="verdict"]').selectOption('');
  await page.locator('[data-testid="flow-filters"] [name="status"]').fill('');
  await page.locator('[data-testid="flow-filters"] [name="status"]').dispatchEvent('change');
  await page.locator('[data-testid="flow-filters"] [name="protocol"]').selectOption('');
  await page.locator('[data-testid="flow-filters"] [name="from"]').selectOption('');
  await page.locator('[data-testid="flow-filters"] [name="to"]').selectOption('');
  await page.locator('[data-testid="flow-filters"] [name="namespace"]').selectOption('');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="flow-table"] tbody tr').length >= 40);
  await page.screenshot({ path: join(dir, 'flows.png') });
});

test('policy view: shows the verdict and what decided it', async () => {
  await page.goto(`${url}#/policy`);
  const form = page.locator('[data-testid="policy-form"]');
  await form.locator('select[name="from"] option', { hasText: 'demo/client' }).waitFor({ state: 'attached' });
  await form.locator('select[name="from"]').selectOption('demo/client');
  await form.locator('select[name="to"]').selectOption('demo/web');
  assert.equal(await form.locator('[name="port"]').inputValue(), '80');
  queries.length = 0;
  await form.locator('button[type="submit"]').click();
  const a = page.locator('[data-testid="policy-answer"][data-verdict="deny"]');
  await a.waitFor();
  assert.deepEqual(Object.fromEntries(queries.at(-1)!), { from: 'demo/client', to: 'demo/web:80/TCP' }, 'the ebmesh policy explain syntax');
  assert.match((await a.textContent()) ?? '', /isolated, no rule allows/);
  assert.equal(await a.locator('.backend').count(), 3, 'one answer per backend');
  await page.screenshot({ path: join(dir, 'policy.png') });
});

test('the page loads nothing from outside the loopback', async () => {
  const outside: string[] = [];
  page.on('request', (r) => { if (!r.url().startsWith(url) && !r.url().startsWith('data:')) outside.push(r.url()); });
  await page.goto(url);
  await page.locator('[data-edge-id]').first().waitFor();
  assert.deepEqual(outside, []);
});

