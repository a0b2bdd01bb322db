/**
 * The node proxy process: a node:cluster primary that forks one worker per
 * core (they share the listening socket; the primary hands out connections
 * round-robin), restarts a worker that dies, fans the daemon's config out,
 * funnels the workers' request events back, and serves the proxy's own
 * metrics on a second listener.
 *
 * Started by the daemon with fork(); argv: --host H --port P --metrics-port M --pins DIR [--workers N].
 * It exits when the daemon's IPC channel closes, so it never outlives it.
 */
import cluster, { type Worker } from 'node:cluster';
import http from 'node:http';
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { ProxyStats } from '../../proxy/index.js';
import type { FromProxy, FromWorker, ProxyProcessStats, ProxyPush, ToProxy, ToWorker } from './messages.js';
import { renderProxyMetrics } from './metrics.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string' }, port: { type: 'string' }, 'metrics-port': { type: 'string' },
    pins: { type: 'string' }, workers: { type: 'string' },
  },
});
const host = values.host ?? '127.0.0.1';
const port = Number(values.port ?? 15001);
const mapPins = values.pins ?? '';

if (cluster.isWorker) {
  // Loaded only in workers: the primary never needs the proxy core or the BPF bindings (memory).
  const { runWorker } = await import('./worker.js');
  await runWorker({ host, port, mapPins });
} else {
  const n = Math.max(1, Number(values.workers ?? 0) || os.availableParallelism());
  const toDaemon = (m: FromProxy) => { if (process.connected) process.send!(m); };
  let push: ProxyPush | undefined;
  let starts = 0;
  let eventsDropped = 0;
  let ready = false;
  const latest = new Map<number, FromWorker & { type: 'stats' }>();
  const cumulative: ProxyStats = { responses: {}, requests: 0, connections: 0, tcpPassthrough: 0 };

  const configure = (w: Worker) => { if (push && w.isConnected()) w.send({ type: 'config', push, workers: n } satisfies ToWorker); };

  const fork = () => {
    starts++;
    const w = cluster.fork();
    w.on('message', (m: FromWorker) => {
      switch (m.type) {
        case 'hello':
          configure(w);
          break;
        case 'listening':
          if (!ready && [...Object.values(cluster.workers ?? {})].length >= 1) {
            ready = true;
            toDaemon({ type: 'ready', host, port, metricsPort, workers: n });
          }
          break;
        case 'requests':
          eventsDropped += m.dropped;
          if (m.counts.length || m.events.length) toDaemon({ type: 'requests', counts: m.counts, events: m.events });
          break;
        case 'stats':
          latest.set(w.id, m);
          break;
      }
    });
    w.on('exit', () => {
      // Keep what the dead worker counted, then replace it.
      const last = latest.get(w.id);
      if (last) addStats(cumulative, last.stats);
      latest.delete(w.id);
      if (!stopping) setTimeout(fork, 100);
    });
  };

  const stats = (): ProxyProcessStats => {
    const sum: ProxyStats = { responses: { ...cumulative.responses }, requests: cumulative.requests, connections: cumulative.connections, tcpPassthrough: cumulative.tcpPassthrough };
    let configVersion = 0;
    let configErrors = 0;
    let unresolved = 0;
    const attributed = { cgroup: 0, ip: 0, unknown: 0 };
    for (const { stats: s } of latest.values()) {
      attributed.cgroup += s.attributed.cgroup;
      attributed.ip += s.attributed.ip;
      attributed.unknown += s.attributed.unknown;
      addStats(sum, s);
      configVersion = Math.max(configVersion, s.configVersion);
      configErrors += s.configErrors;
      unresolved += s.unresolved;
    }
    return { ...sum, workers: latest.size, workerStarts: starts, configVersion, configErrors, eventsDropped, unresolved, attributed };
  };

  let stopping = false;
  process.on('message', (m: ToProxy) => {
    if (m.type === 'config') {
      push = m.push;
      for (const w of Object.values(cluster.workers ?? {})) if (w) configure(w);
      if (Object.keys(cluster.workers ?? {}).length === 0) for (let i = 0; i < n; i++) fork();
    } else if (m.type === 'stats?') {
      toDaemon({ type: 'stats', id: m.id, stats: stats() });
    }
  });
  const exit = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    process.exit(0);
  };
  process.on('disconnect', exit);
  process.on('SIGTERM', exit);
  toDaemon({ type: 'hello' });

  // The proxy's own metrics, for Prometheus and for people.
  const metricsPort = Number(values['metrics-port'] ?? 15020);
  const metrics = http.createServer((req, res) => {
    if (req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(renderProxyMetrics(stats()));
    } else if (req.url === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(stats()));
    } else {
      res.writeHead(404).end();
    }
  });
  metrics.on('error', (e) => toDaemon({ type: 'error', message: `metrics listener: ${e.message}` }));
  metrics.listen(metricsPort, host);
}

function addStats(into: ProxyStats, s: ProxyStats): void {
  into.requests += s.requests;
  into.connections += s.connections;
  into.tcpPassthrough += s.tcpPassthrough;
  for (const [k, v] of Object.entries(s.responses)) into.responses[k] = (into.responses[k] ?? 0) + v;
}
