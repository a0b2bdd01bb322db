/**
 * One node proxy worker (a node:cluster worker): the proxy core on the
 * shared listener, attributing connections through the pinned BPF map, the
 * node's tunnel endpoint beside its siblings' (./worker-endpoint.ts), and
 * reporting finished requests, flows and counters to the primary in batches.
 * Without its primary it serves on until replaced (./orphan.ts).
 */
import cluster from 'node:cluster';
import { subscribe } from 'node:diagnostics_channel';
import { proxyChannels, startNodeProxy, type Caller, type Endpoint, type NodeProxy, type ReadInto, type RequestDoneEvent } from './index.js';
import { describeError } from '../errors.js';
import { DEFAULT_DRAIN_MS, DRAIN_ACCEPT_GRACE_MS, divideForWorkers, type FromWorker, type ToWorker } from './messages.js';
import { countKey, type ProxyRequestCounter } from './requests.js';
import { OriginalResolver } from './resolve.js';
import { TunnelForwarder, type TunnelledFlow } from './tunnel-forward.js';
import { WorkerEndpoint } from './worker-endpoint.js';
import { whenSteeredAway } from './orphan.js';
import type { TunnelFlow } from '../tunnel/index.js';

/** Requests sent individually per flush; every request is counted either way. */
const SAMPLE = 200;

export async function runWorker(env: { host: string; host6?: string; port: number; mapPins: string }): Promise<void> {
  const send = (m: FromWorker) => { if (process.connected) process.send!(m); };
  const resolver = new OriginalResolver(env.mapPins);
  // Cross-node mTLS: the streams this worker sent into the tunnel, a sample per flush like the requests (observe records them).
  let sent: TunnelledFlow[] = [];
  const forwarder = new TunnelForwarder((f) => { if (sent.length < SAMPLE) sent.push(f); }, env.host);
  // ... and the streams its endpoint received.
  let received: TunnelFlow[] = [];
  const endpoint = new WorkerEndpoint((f) => { if (received.length < SAMPLE) received.push(f); });
  let proxy: NodeProxy | undefined;
  let drainMs = DEFAULT_DRAIN_MS;
  let configVersion = 0;
  let configErrors = 0;

  // Counted here, sent every 250 ms with a sample of the events: one IPC
  // message (or one serialised event) per request costs more than the request.
  let batch: RequestDoneEvent[] = [];
  let counts = new Map<string, ProxyRequestCounter>();
  let dropped = 0;
  subscribe(proxyChannels.request.name, (m) => {
    const e = m as RequestDoneEvent;
    const id = `${e.service}|${e.route}|${e.backend}|${e.status}`;
    let c = counts.get(id);
    if (!c) counts.set(id, (c = { ...countKey(e), requests: 0, retries: 0, durationMsSum: 0 }));
    c.requests++;
    c.retries += e.retries;
    c.durationMsSum += e.durationMs;
    if (batch.length < SAMPLE) batch.push(e);
    else dropped++;
  });
  const flushNow = () => {
    if (counts.size || dropped) send({ type: 'requests', counts: [...counts.values()], events: batch, dropped });
    batch = [];
    counts = new Map();
    dropped = 0;
    if (sent.length || received.length) send({ type: 'tunnel', sent, received });
    sent = [];
    received = [];
    const tunnel = endpoint.status();
    if (proxy) send({ type: 'stats', stats: { ...proxy.stats(), open: proxy.open, configVersion, configErrors, unresolved: resolver.unresolved, attributed: { ...resolver.attributed }, tunnelSent: { ...forwarder.stats }, ...(tunnel ? { tunnel } : {}), tunnelBusy: endpoint.busy } });
  };
  const flush = setInterval(flushNow, 250);
  flush.unref();

  // A newer generation took over: the tunnel port is its own now; accept what
  // the kernel sent here before the switch, then let every connection end.
  // The last counts go out with our exit; the deadline cuts what never ends.
  let draining = false;
  const drain = (graceMs: number, deadlineMs: number) => {
    if (draining) return;
    draining = true;
    endpoint.release();
    const exit = () => { flushNow(); setTimeout(() => process.exit(0), 50); };
    // Not unref'd: it holds the event loop open, which an orphan needs (no IPC channel does; connections the relay carries are not
    // Node handles), else the worker would end as soon as its listener closed, and with it what it still carries.
    setTimeout(exit, deadlineMs);
    setTimeout(() => {
      endpoint.goaway();
      const proxyDone = proxy ? proxy.drain() : Promise.resolve();
      void proxyDone.then(async () => {
        while (endpoint.busy) await new Promise((r) => setTimeout(r, 200));
        exit();
      });
    }, graceMs);
  };

  // The first config starts the proxy; later ones update it in place.
  process.on('message', (m: ToWorker) => {
    // The primary cuts at the deadline and counts what it cut; our own deadline, a second later, only backs it up should it be gone.
    if (m.type === 'drain') return drain(m.graceMs, m.deadlineMs + 1000);
    if (draining) return;
    resolver.setCallers(m.push);
    drainMs = m.push.drainMs ?? drainMs;
    endpoint.configure(m.push);
    try { forwarder.configure(m.push.tunnel); } catch (e) { process.stderr.write(`node proxy worker ${process.pid}: tunnel: ${describeError(e)}\n`); }
    const routing = divideForWorkers(m.push.routing, m.workers);
    if (!proxy) {
      startNodeProxy({ ...routing, listen: { host: env.host, port: env.port, ...(env.host6 ? { hosts: [env.host6] } : {}) }, resolveOriginal: (s) => resolver.resolve(s), forward: (s, head, o) => forwarder.forward(s, head, o), dial: Object.assign((ep: Endpoint, caller: Caller, into?: ReadInto) => forwarder.dial(ep, caller, into), { speaksForCaller: (ep: Endpoint) => forwarder.tunnels(ep.ip), carry: (ep: Endpoint, caller: Caller, fd: number, head: Buffer) => forwarder.carry(ep, caller, fd, head) }) }).then(
        (p) => { proxy = p; configVersion++; send({ type: 'listening' }); },
        (e) => { process.stderr.write(`node proxy worker ${process.pid}: ${describeError(e)}\n`); process.exit(1); },
      );
      return;
    }
    try {
      proxy.update(routing);
      configVersion++;
    } catch (e) {
      // The old config stays: a bad push never takes the proxy down.
      configErrors++;
      process.stderr.write(`node proxy worker ${process.pid}: config rejected: ${describeError(e)}\n`);
    }
  });
  // node:cluster ends a worker whose primary went away; this one serves on instead (./orphan.ts) — set before it can happen.
  cluster.worker!.exitedAfterDisconnect = true;
  process.on('disconnect', () => {
    if (draining) return;
    process.stderr.write(`node proxy worker ${process.pid}: the primary is gone; serving on port ${env.port} until the kernel steers elsewhere\n`);
    whenSteeredAway(env.mapPins, env.port, (now) => {
      process.stderr.write(`node proxy worker ${process.pid}: the kernel steers to ${now ?? 'nothing'}: draining\n`);
      drain(DRAIN_ACCEPT_GRACE_MS, drainMs);
    });
  });
  // The primary stops workers with SIGTERM: exit normally so that exit-time work runs (--cpu-prof writes its profile then).
  process.on('SIGTERM', () => process.exit(0));
  send({ type: 'hello' });
  process.on('uncaughtException', (e) => {
    // One bad connection must not take the worker down; log and carry on.
    process.stderr.write(`node proxy worker ${process.pid}: uncaught: ${describeError(e)}\n`);
  });
}
