/**
 * The node proxy process: a node:cluster primary that forks one worker per
 * core, restarts a worker that dies, fans the agent's config out, funnels
 * the workers' request events and tunnel flows back. Its counters go to the
 * agent over the control socket (`stats?`), and from there into the node's
 * /metrics: the proxy listens on no admin port the workloads could reach.
 *
 * The workers carry the whole data path: each accepts on the shared
 * listener itself (SCHED_NONE: the primary binds it and never accepts) and
 * runs a tunnel endpoint of its own. So a primary killed with -9 takes no
 * listener, connection or tunnel session with it: its workers serve on,
 * orphaned, until the agent's next generation took over (./orphan.ts).
 *
 * It outlives the agent that started it (detached, its own session): the
 * agent talks to it over a unix control socket (./control.ts), and the next
 * agent finds it there and carries on, so an agent restart touches no
 * connection the proxy carries. Without an agent it keeps its last config.
 * It exits on SIGTERM or a `shutdown` message (teardown), and after a
 * `drain` (a newer generation took over, see ./supervisor.ts) once its last
 * connection ended or the drain deadline passed.
 *
 * argv: --host H [--host6 H6] --port P --pins DIR --control SOCK --pid-file F [--workers N].
 * --host6: the node's IPv6 address, listened on too (the same port) for IPv6 clients.
 */
import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';
import os from 'node:os';
import { renameSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ProxyStats } from './index.js';
import { PROXY_PROTOCOL, type FromProxy, type FromWorker, type ProxyLaunch, type ProxyProcessStats, type ProxyPush, type ToProxy, type ToWorker, type TunnelSentStats } from './messages.js';
import { proxyBuild, readMessages, writeMessage } from './control.js';
import type { TunnelFlow } from '../tunnel/index.js';
import type { TunnelledFlow } from './tunnel-forward.js';
import { cgroupOfProcess } from '../host/cgroup.js';
import { cgroupDirOf, claimCpuShare } from './cpu-share.js';
import { mergeEndpointStatus } from './worker-endpoint.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string' }, host6: { type: 'string' }, port: { type: 'string' },
    pins: { type: 'string' }, workers: { type: 'string' }, control: { type: 'string' }, 'pid-file': { type: 'string' },
  },
});
const host = values.host ?? '127.0.0.1';
const host6 = values.host6;
const port = Number(values.port ?? 15001);
const mapPins = values.pins ?? '';

if (cluster.isWorker) {
  // Loaded only in workers: the primary never needs the proxy core or the BPF bindings (memory).
  const { runWorker } = await import('./worker.js');
  await runWorker({ host, ...(host6 ? { host6 } : {}), port, mapPins });
} else {
  const controlPath = values.control;
  const pidFile = values['pid-file'];
  if (!controlPath || !pidFile) {
    process.stderr.write('node proxy: --control and --pid-file are required\n');
    process.exit(2);
  }
  const launch: ProxyLaunch = { host, ...(host6 ? { host6 } : {}), port, mapPins, workers: Number(values.workers ?? 0) || 0, nodeFlags: process.execArgv.join(' '), cgroup: cgroupOfProcess() };
  const n = Math.max(1, launch.workers || os.availableParallelism());
  // Before the workers exist: they inherit the session and the cgroup, and with them the share.
  const share = claimCpuShare(n, { cgroupDir: cgroupDirOf(launch.cgroup) });
  if (share.set.length) process.stderr.write(`node proxy ${process.pid}: CPU share of ${n} groups: ${share.set.join(', ')}\n`);
  for (const f of share.failed) process.stderr.write(`node proxy ${process.pid}: could not claim its CPU share: ${f}\n`);
  const since = new Date().toISOString();
  const build = proxyBuild();
  /** The agent connected now, if any: one at a time, the newest wins. */
  let agent: net.Socket | undefined;
  const toAgent = (m: FromProxy) => writeMessage(agent, m);
  let push: ProxyPush | undefined;
  let starts = 0;
  let eventsDropped = 0;
  let ready = false;
  const latest = new Map<number, FromWorker & { type: 'stats' }>();
  const cumulative: ProxyStats = { responses: {}, requests: 0, connections: 0, tcpPassthrough: 0 };

  // Cross-node mTLS: the flows the workers' endpoints received and the streams
  // they sent go to the agent in batches (observe).
  const TUNNEL_FLOWS_PER_FLUSH = 500;
  let received: TunnelFlow[] = [];
  let sent: TunnelledFlow[] = [];
  const tunnelFlush = setInterval(() => {
    if (received.length || sent.length) toAgent({ type: 'tunnel', received, sent });
    received = [];
    sent = [];
  }, 250);
  tunnelFlush.unref();
  const configure = (w: Worker) => {
    if (push && w.isConnected()) w.send({ type: 'config', push, workers: n } satisfies ToWorker);
  };

  // Workers accept on the shared socket themselves: with round-robin the primary would accept, and its death would close the listener.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const fork = () => {
    starts++;
    const w = cluster.fork();
    w.on('message', (m: FromWorker) => {
      switch (m.type) {
        case 'hello':
          configure(w);
          break;
        case 'listening':
          if (!ready) {
            ready = true;
            toAgent({ type: 'ready', host, port, workers: n });
          }
          break;
        case 'requests':
          eventsDropped += m.dropped;
          // With no agent connected (one restarting), the counts are lost to it, and counted here.
          if (!agent) eventsDropped += m.events.length;
          else if (m.counts.length || m.events.length) toAgent({ type: 'requests', counts: m.counts, events: m.events });
          break;
        case 'tunnel':
          if (agent) {
            sent.push(...m.sent.slice(0, TUNNEL_FLOWS_PER_FLUSH - sent.length));
            received.push(...m.received.slice(0, TUNNEL_FLOWS_PER_FLUSH - received.length));
          }
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
      if (!stopping && !drainingSince) setTimeout(fork, 100);
      if (drainingSince) drainCheck();
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
    const tunnel = mergeEndpointStatus([...latest.values()].map(({ stats: s }) => s.tunnel));
    const tunnelSent: TunnelSentStats = { streams: 0, failed: 0, noPeer: 0, upstreams: 0 };
    for (const { stats: s } of latest.values()) for (const k of Object.keys(tunnelSent) as Array<keyof TunnelSentStats>) tunnelSent[k] += s.tunnelSent[k] ?? 0;
    return {
      ...sum, workers: latest.size, workerStarts: starts, configVersion, configErrors, eventsDropped, unresolved, attributed,
      ...(push?.tunnel ? { tunnelSent } : {}), ...(tunnel ? { tunnel } : {}),
      ...(drainingSince ? { draining: { since: new Date(drainingSince).toISOString(), open: openNow() } } : {}),
    };
  };

  let stopping = false;
  const onMessage = (from: net.Socket, m: ToProxy) => {
    switch (m.type) {
      case 'hello':
        // A newer agent: the older connection (a dying agent) is let go.
        if (agent && agent !== from) agent.destroy();
        agent = from;
        toAgent({ type: 'hello', protocol: PROXY_PROTOCOL, pid: process.pid, launch, ready, configured: !!push, since, build, draining: !!drainingSince });
        break;
      case 'config':
        // A draining proxy keeps the config it had: it only finishes what it carries.
        if (from !== agent || drainingSince) return;
        push = m.push;
        for (const w of Object.values(cluster.workers ?? {})) if (w) configure(w);
        if (Object.keys(cluster.workers ?? {}).length === 0) for (let i = 0; i < n; i++) fork();
        break;
      case 'stats?':
        writeMessage(from, { type: 'stats', id: m.id, stats: stats() } satisfies FromProxy);
        break;
      case 'shutdown':
        exit();
        break;
      case 'drain':
        drain(m.graceMs, m.deadlineMs);
        break;
    }
  };

  // --- Handing over to a newer generation --------------------------------------
  let drainingSince = 0;
  let drainTimer: NodeJS.Timeout | undefined;
  const openNow = () => [...latest.values()].reduce((n, { stats: s }) => n + s.open + s.tunnelBusy, 0);
  const drain = (graceMs: number, deadlineMs: number) => {
    if (drainingSince) return;
    drainingSince = Date.now();
    process.stderr.write(`node proxy ${process.pid}: draining (a newer proxy took over): accepting for ${graceMs} ms more, deadline ${deadlineMs} ms\n`);
    // Each worker lets the tunnel port go to the new generation now, stops accepting after the grace, and exits once it carries nothing.
    for (const w of Object.values(cluster.workers ?? {})) if (w?.isConnected()) w.send({ type: 'drain', graceMs, deadlineMs } satisfies ToWorker);
    drainTimer = setInterval(drainCheck, 200);
    setTimeout(() => {
      const cut = openNow();
      process.stderr.write(`node proxy ${process.pid}: drain deadline: cutting ${cut} connections and tunnel sessions\n`);
      drained(cut);
    }, deadlineMs).unref();
  };
  const drainCheck = () => {
    if (!drainingSince || stopping) return;
    if (Object.keys(cluster.workers ?? {}).length === 0) drained(0);
  };
  let drainedOnce = false;
  const drained = (cut: number) => {
    if (drainedOnce) return;
    drainedOnce = true;
    clearInterval(drainTimer);
    const ms = Date.now() - drainingSince;
    process.stderr.write(`node proxy ${process.pid}: drained in ${ms} ms, ${cut} cut\n`);
    toAgent({ type: 'drained', ms, cut });
    // The agent reads the last words before the control socket closes.
    const a = agent;
    if (a && a.writableLength) a.once('drain', exit);
    else exit();
    setTimeout(exit, 1000).unref();
  };

  const control = net.createServer((s) => {
    s.on('error', () => undefined);
    s.on('close', () => { if (agent === s) agent = undefined; });
    readMessages<ToProxy>(s, (m) => onMessage(s, m));
  });
  // Only the agent (root) may steer the proxy.
  process.umask(0o077);
  // A socket file left by a proxy that died: nobody answers there, so it is ours to replace.
  rmSync(controlPath, { force: true });
  control.on('error', (e) => {
    process.stderr.write(`node proxy: control socket ${controlPath}: ${e.message}\n`);
    process.exit(1);
  });
  control.listen(controlPath, () => {
    // The PID file last, by rename: whoever reads it finds a proxy that answers.
    writeFileSync(`${pidFile}.tmp`, String(process.pid));
    renameSync(`${pidFile}.tmp`, pidFile);
  });

  const exit = () => {
    if (stopping) return;
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    try {
      // Only our own files: a proxy that replaced us keeps its own.
      if (readFileSync(pidFile, 'utf8').trim() === String(process.pid)) {
        rmSync(pidFile, { force: true });
        rmSync(controlPath, { force: true });
      }
    } catch { /* already gone */ }
    process.exit(0);
  };
  process.on('SIGTERM', exit);
  process.on('SIGINT', exit);
  // The agent's terminal or session going away is no reason to stop carrying connections.
  process.on('SIGHUP', () => undefined);
}

function addStats(into: ProxyStats, s: ProxyStats): void {
  into.requests += s.requests;
  into.connections += s.connections;
  into.tcpPassthrough += s.tcpPassthrough;
  for (const [k, v] of Object.entries(s.responses)) into.responses[k] = (into.responses[k] ?? 0) + v;
}
