/**
 * A profiling harness for the node proxy's HTTP/1.1 path (not a test, not a
 * benchmark: figures come from `ebmesh bench proxy`). It starts nginx on
 * 127.0.0.1 as the upstream, one in-process node proxy in front of it with an
 * HTTPRoute (every connection attributed by a fake steering), runs the
 * project's load generator against the proxy, prints its summary and exits,
 * so that `node --cpu-prof dist/test/proxy/perf-harness.js` profiles the
 * proxy alone.
 *
 *   node [--cpu-prof] dist/test/proxy/perf-harness.js [--seconds 10] [--connections 64] [--rate 0] [--direct]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { startNodeProxy } from '../../src/proxy/index.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    rate: { type: 'string', default: '0' },
    direct: { type: 'boolean', default: false },
  },
});

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

const dir = mkdtempSync(join(tmpdir(), 'ebmesh-proxy-perf-'));
const upstreamPort = await freePort();
writeFileSync(
  join(dir, 'nginx.conf'),
  `daemon off; pid ${dir}/nginx.pid; error_log stderr warn; worker_processes 1;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server { listen 127.0.0.1:${upstreamPort} backlog=4096; location / { return 200 "ok\\n"; } } }
`,
);
const nginx = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'inherit', 'inherit'] });
await new Promise((r) => setTimeout(r, 300));

const vip = '10.250.0.1';
const proxy = await startNodeProxy({
  listen: { host: '127.0.0.1', port: 0 },
  services: [{ name: 'target', namespace: 'bench', vip, port: 80, protocol: 'auto', endpoints: [{ ip: '127.0.0.1', port: upstreamPort }] }],
  httpRoutes: [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'target', namespace: 'bench' },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'target' }], rules: [{ backendRefs: [{ name: 'target', port: 80 }] }] },
    } as never,
  ],
  resolveOriginal: () => ({ dst: { ip: vip, port: 80 }, client: { identity: 'spiffe://cluster.local/ns/bench/sa/client', namespace: 'bench' } }),
});

const target = values.direct ? `http://127.0.0.1:${upstreamPort}/` : `http://127.0.0.1:${proxy.address.port}/`;
const cpu0 = process.cpuUsage();
const loadgen = spawn(
  join(PACKAGE_ROOT, 'tools/loadgen/build/ebmesh-loadgen'),
  ['--url', target, '--rate', values.rate!, '--connections', values.connections!, '--duration', values.seconds!, '--warmup', '1', '--timeout', '5000'],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
let out = '';
loadgen.stdout.on('data', (d: Buffer) => (out += d.toString()));
await new Promise((r) => loadgen.once('exit', r));
try {
  const j = JSON.parse(out) as { achieved_rate: number; requests: unknown; status: unknown; latency_us: Record<string, number> };
  const mem = process.memoryUsage();
  const ms = (us: number | undefined) => +((us ?? 0) / 1000).toFixed(2);
  console.log(
    JSON.stringify({
      target,
      rate: j.achieved_rate,
      requests: j.requests,
      status: j.status,
      p50ms: ms(j.latency_us.p50),
      p99ms: ms(j.latency_us.p99),
      cpuS: +((process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / 1e6).toFixed(2),
      cpuUsPerReq: Math.round((process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / proxy.stats().requests),
      userSysS: [process.cpuUsage(cpu0).user / 1e6, process.cpuUsage(cpu0).system / 1e6],
      rssMiB: +(mem.rss / 2 ** 20).toFixed(1),
      heapMiB: +(mem.heapUsed / 2 ** 20).toFixed(1),
      stats: proxy.stats(),
    }),
  );
} catch {
  console.log(out);
}
await proxy.close();
nginx.kill('SIGTERM');
spawnSync('sleep', ['0.2']);
rmSync(dir, { recursive: true, force: true });
