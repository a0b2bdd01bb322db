/**
 * One node proxy worker (a node:cluster worker): the proxy core on the
 * shared listener, attributing connections through the pinned BPF map, and
 * reporting finished requests and counters to the primary in batches.
 */
import { subscribe } from 'node:diagnostics_channel';
import { proxyChannels, startNodeProxy, type NodeProxy, type RequestDoneEvent } from '../../proxy/index.js';
import { describeError } from '../../errors.js';
import { divideForWorkers, type FromWorker, type ToWorker } from './messages.js';
import { OriginalResolver } from './resolve.js';
import { TunnelForwarder } from './tunnel-forward.js';

const MAX_BATCH = 2000;

export async function runWorker(env: { host: string; port: number; mapPins: string }): Promise<void> {
  const send = (m: FromWorker) => { if (process.connected) process.send!(m); };
  const resolver = new OriginalResolver(env.mapPins);
  // Cross-node mTLS flows: kept for the stats line; observe joins the endpoint's side (/v1/tunnel).
  const forwarder = new TunnelForwarder(() => undefined);
  let proxy: NodeProxy | undefined;
  let configVersion = 0;
  let configErrors = 0;

  // Events are batched: one IPC message per event would cost more than the request.
  let batch: RequestDoneEvent[] = [];
  let dropped = 0;
  subscribe(proxyChannels.request.name, (m) => {
    if (batch.length < MAX_BATCH) batch.push(m as RequestDoneEvent);
    else dropped++;
  });
  const flush = setInterval(() => {
    if (batch.length || dropped) send({ type: 'requests', events: batch, dropped });
    batch = [];
    dropped = 0;
    if (proxy) send({ type: 'stats', stats: { ...proxy.stats(), configVersion, configErrors, unresolved: resolver.unresolved, attributed: { ...resolver.attributed } } });
  }, 250);
  flush.unref();

  // The first config starts the proxy; later ones update it in place.
  process.on('message', (m: ToWorker) => {
    if (m.type !== 'config') return;
    resolver.setCallers(m.push);
    try { forwarder.configure(m.push.tunnel); } catch (e) { process.stderr.write(`node proxy worker ${process.pid}: tunnel: ${describeError(e)}\n`); }
    const routing = divideForWorkers(m.push.routing, m.workers);
    if (!proxy) {
      startNodeProxy({ ...routing, listen: { host: env.host, port: env.port }, resolveOriginal: (s) => resolver.resolve(s), forward: (s, head, o) => forwarder.forward(s, head, o) }).then(
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
  process.on('disconnect', () => process.exit(0));
  send({ type: 'hello' });
  process.on('uncaughtException', (e) => {
    // One bad connection must not take the worker down; log and carry on.
    process.stderr.write(`node proxy worker ${process.pid}: uncaught: ${describeError(e)}\n`);
  });
}
