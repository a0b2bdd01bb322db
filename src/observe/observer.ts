/**
 * The agent's observe part: reads the kernel's flow events, names them from
 * the control plane's snapshot, keeps a bounded history, streams to
 * followers, counts metrics and serves them to Prometheus (to scrapers
 * that hold the node's metrics token: metrics-access.ts).
 *
 * Nothing is dropped silently: the kernel counts what the ring had no room
 * for, and a follower too slow to keep up has its skipped flows counted (and
 * is told, in its stream).
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { statSync, rmSync } from 'node:fs';
import { writePrivateFile } from '../host/private-files.js';
import { join } from 'node:path';
import { EventType } from '../abi/structs.js';
import { computeFrontends, workloadIp, workloadIpv6, wlKey, type Snapshot, type DesiredFrontend } from '../controlplane/index.js';
import { formatHostPort } from '../resources/ip.js';
import type { WorkloadResource } from '../resources/index.js';
import type { InstancePaths } from '../paths.js';
import { emptyNames, matches, methodName, type Flow, type FlowFilter, type NameTable } from './flow.js';
import { EVENT_OFFSET as OFF, EVENT_SIZE, FlowHistory } from './history.js';
import { ObserveMetrics, type Health, type HttpSeries } from './metrics.js';
import { GoldenWindow, type GoldenRow } from './golden.js';
import { CONTENT_TYPE } from '../net/prom.js';
import { RingReader } from './ringbuf.js';
import { bearerMatches, type MetricsListen } from './metrics-access.js';

export const DEFAULT_HISTORY = 65536;
/** Bytes a follower may have unsent before its flows are skipped (and counted). */
const FOLLOWER_BACKLOG = 4 << 20;

interface Follower {
  res: ServerResponse;
  filter: FlowFilter;
  skipped: number;
}

/** The HTTP pairs remembered (one per client connection) before the table starts over. */
const HTTP_PAIRS_MAX = 65536;

/**
 * A client connection's HTTP series, and the addresses it was resolved for:
 * the last word of each 16-byte address (all of an IPv4 one), and the other
 * words of all three folded into one, read in place without decoding.
 */
interface HttpPair {
  series: HttpSeries;
  saddr: number;
  daddr: number;
  high: number;
  ports: number;
  origDaddr: number;
  origDport: number;
}

/** Three words of a 16-byte address before its last, folded into one number. */
const highWords = (mem: Buffer, off: number): number => (mem.readUInt32LE(off) ^ mem.readUInt32LE(off + 4) ^ mem.readUInt32LE(off + 8)) >>> 0;

/** What the observer needs from the data path. */
export interface ObserveSource {
  /** The flow event ring buffer map: its fd and size in bytes (max_entries). */
  ring(): { fd: number; bytes: number };
  /** The agent's identity of a workload (the persisted table policy enforces with), so flows, drops and explain agree. */
  identityOf(w: WorkloadResource): number | undefined;
  /** Policy names by the policy_ref the kernel reports. */
  policyRefs(): readonly string[];
  health(): Omit<Health, 'userLost' | 'subscribersDropped'>;
}

/** One stream through the cross-node mTLS tunnel, as recordTunnel takes it. */
export interface TunnelStream {
  time: string;
  observer: 'client' | 'server';
  source: { ip: string; port: number };
  destination: { ip: string; port: number };
  bytesToDestination: number;
  bytesToSource: number;
  durationMs: number;
  /** The other node's SPIFFE ID (its node SVID). */
  peerIdentity?: string;
  /** The calling workload's SPIFFE ID. */
  sourceIdentity?: string;
  error?: string;
  /** Refused by the receiving endpoint's NetworkPolicy judgement: recorded as a drop (reason policy-ingress). */
  denied?: { policy?: { ref: number; rule: number; name: string } };
}

export class Observer {
  readonly metrics = new ObserveMetrics();
  readonly golden = new GoldenWindow(60);
  private names: NameTable = emptyNames();
  private readonly history: FlowHistory;
  /** Socket cookie of the connection an HTTP exchange was seen on -> its series. */
  private readonly httpPairs = new Map<number, HttpPair>();
  private readonly followers = new Set<Follower>();
  private reader: RingReader | undefined;
  private server: Server | undefined;
  private userLost = 0;
  private followersSkipped = 0;
  metricsPort = 0;

  constructor(private readonly paths: InstancePaths, private readonly source: ObserveSource, historySize = DEFAULT_HISTORY) {
    this.history = new FlowHistory(historySize, BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint());
  }

  start(): void {
    const ring = this.source.ring();
    this.reader = new RingReader(ring.fd, ring.bytes, (mem, off, len) => this.onRecord(mem, off, len));
    this.reader.start();
  }

  /** More Prometheus text after the agent's own (the node proxy's counters). */
  extraMetrics: (() => Promise<string>) | undefined;

  /** Whether the agent is ready (its last reconcile, if any, succeeded): what /readyz answers. */
  readiness: (() => boolean) | undefined;

  /**
   * Serves /metrics on host:port (port 0: any free port) to a scraper that
   * sends the token; 401 to anyone else. A port in use falls back to a free one.
   * /readyz needs no token: it says only "ok" (200) or "not ready" (503), for
   * the kubelet's probe, which would otherwise start a CLI in the agent's
   * container every few seconds (a runc exec and a Node.js start, which
   * stalled the node's workloads for tens of milliseconds on a small node).
   */
  async serveMetrics(listen: MetricsListen): Promise<number> {
    const { host, port } = listen;
    const server = createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/readyz') {
        const ready = this.readiness?.() ?? true;
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(ready ? 'ok\n' : 'not ready\n');
      } else if (!bearerMatches(req.headers.authorization, listen.token)) {
        res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer realm="ebmesh metrics"' });
        res.end(`the node's metrics need its token: Authorization: Bearer <the contents of ${listen.tokenFile}>\n`);
      } else if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
        void this.scrape().then((text) => {
          res.writeHead(200, { 'content-type': CONTENT_TYPE });
          res.end(text);
        }, (e: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`${e.message}\n`);
        });
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found: try /metrics\n');
      }
    });
    const listenOn = (p: number) => new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(p, host, () => { server.off('error', reject); resolve(); });
    });
    try {
      await listenOn(port);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      process.stderr.write(`metrics: ${host}:${port} is in use; serving on a free port instead\n`);
      await listenOn(0);
    }
    this.server = server;
    const a = server.address();
    this.metricsPort = typeof a === 'object' && a ? a.port : 0;
    writePrivateFile(join(this.paths.runDir, 'metrics.addr'), `${host}:${this.metricsPort}\n`);
    return this.metricsPort;
  }

  /** Everything a scrape gets: the agent's metrics, then the extra ones (a part that fails to answer is left out). */
  async scrape(): Promise<string> {
    const own = this.exposition();
    const extra = await this.extraMetrics?.().catch(() => '') ?? '';
    return own + extra;
  }

  exposition(): string {
    this.reader?.drain(); // a scrape sees every event the kernel has written so far
    this.metrics.refresh({ ...this.source.health(), userLost: this.userLost, subscribersDropped: this.followersSkipped });
    return this.metrics.registry.expose();
  }

  /** Rebuilds the names from a snapshot (after each reconcile). */
  /** frontends: when the caller has them already (computing them is O(services x workloads)). */
  update(snap: Snapshot, frontends: DesiredFrontend[] = computeFrontends(snap)): void {
    const names = emptyNames();
    for (const w of snap.workloads) {
      const ns = w.metadata.namespace;
      const name = w.metadata.name;
      const ip = workloadIp(snap, w);
      const ipv6 = workloadIpv6(snap, w);
      const identity = this.source.identityOf(w);
      for (const a of [ip, ipv6]) if (a) names.byIp.set(a, { namespace: ns, workload: name, identity, labels: w.metadata.labels });
      const st = snap.workloadStatus.get(wlKey(w));
      const cg = w.spec.adopt?.cgroup ?? st?.cgroup;
      if (cg) {
        try {
          names.byCgroup.set(statSync(cg, { bigint: true }).ino.toString(), { namespace: ns, workload: name, ip, ...(ipv6 ? { ipv6 } : {}) });
        } catch { /* not running (yet) */ }
      }
    }
    for (const fe of frontends) {
      names.byVip.set(formatHostPort(fe.vip, fe.port), fe.service);
      for (const b of fe.backends) names.byBackend.set(formatHostPort(b.ip, b.port), fe.service);
    }
    names.policies = this.source.policyRefs();
    this.names = names;
    this.httpPairs.clear(); // resolved under the old names
  }

  private onRecord(mem: Buffer, off: number, len: number): void {
    if (len < EVENT_SIZE) {
      this.userLost++;
      return;
    }
    const seq = this.history.add(mem, off, this.names);
    let flow: Flow | undefined;
    if (mem[off + OFF.type] === EventType.HTTP) this.onHttp(mem, off, seq);
    else this.metrics.record(flow = this.history.flow(seq));
    if (this.followers.size === 0) return;
    flow ??= this.history.flow(seq);
    for (const f of this.followers) this.push(f, flow);
  }

  /**
   * A cross-node mTLS stream, seen in user space by the node proxy (sent
   * into the tunnel: observer client; received by the endpoint: server),
   * into the same history, metrics and streams as the kernel's flows, named
   * like them.
   */
  recordTunnel(t: TunnelStream): void {
    const named = (e: { ip: string; port: number }) => ({ ...e, ...this.names.byIp.get(e.ip) });
    const service = this.names.byBackend.get(formatHostPort(t.destination.ip, t.destination.port));
    const drop = t.denied ? { type: 'drop' as const, verdict: 'DROPPED' as const, reason: 'policy-ingress', ...(t.denied.policy ? { policy: t.denied.policy } : {}) } : undefined;
    const flow = this.history.addFlow((seq) => ({
      seq, time: t.time, type: 'close', verdict: t.error ? 'ERROR' : 'FORWARDED', proto: 'TCP', observer: t.observer,
      source: named(t.source), destination: named(t.destination), ...(service ? { service } : {}), cookie: '0',
      bytes: { toDestination: t.bytesToDestination, toSource: t.bytesToSource }, durationMs: t.durationMs, ...drop,
      mtls: true, ...(t.peerIdentity ? { peerIdentity: t.peerIdentity } : {}), ...(t.sourceIdentity ? { sourceIdentity: t.sourceIdentity } : {}),
    }));
    this.metrics.record(flow);
    for (const f of this.followers) this.push(f, flow);
  }

  /** An HTTP exchange, counted from its raw fields once its connection is resolved. */
  private onHttp(mem: Buffer, off: number, seq: number): void {
    const cookie = mem.readUInt32LE(off + OFF.cookie) + mem.readUInt32LE(off + OFF.cookie + 4) * 2 ** 32;
    const saddr = mem.readUInt32LE(off + OFF.saddr + 12);
    const daddr = mem.readUInt32LE(off + OFF.daddr + 12);
    const high = (highWords(mem, off + OFF.saddr) ^ highWords(mem, off + OFF.daddr) ^ highWords(mem, off + OFF.orig_daddr)) >>> 0;
    const ports = mem.readUInt32LE(off + OFF.sport); // sport and dport, adjacent
    const origDaddr = mem.readUInt32LE(off + OFF.orig_daddr + 12);
    const origDport = mem.readUInt16LE(off + OFF.orig_dport);
    let pair = this.httpPairs.get(cookie);
    if (!pair || pair.saddr !== saddr || pair.daddr !== daddr || pair.high !== high || pair.ports !== ports || pair.origDaddr !== origDaddr || pair.origDport !== origDport) {
      if (this.httpPairs.size >= HTTP_PAIRS_MAX) this.httpPairs.clear();
      pair = { series: this.metrics.httpSeries(this.history.flow(seq)), saddr, daddr, high, ports, origDaddr, origDport };
      this.httpPairs.set(cookie, pair);
    }
    const status = mem.readUInt16LE(off + OFF.http_status);
    const latencyMs = (mem.readUInt32LE(off + OFF.duration_ns) + mem.readUInt32LE(off + OFF.duration_ns + 4) * 2 ** 32) / 1e6;
    this.metrics.recordHttp(pair.series, methodName(mem[off + OFF.http_method]!), status, latencyMs);
    this.golden.record(pair.series.service, Date.now(), latencyMs, status < 500);
  }

  private push(f: Follower, flow: Flow): void {
    if (!matches(flow, f.filter)) return;
    if (f.res.writableLength > FOLLOWER_BACKLOG) {
      f.skipped++;
      this.followersSkipped++;
      return;
    }
    if (f.skipped) {
      f.res.write(JSON.stringify({ lost: f.skipped }) + '\n');
      f.skipped = 0;
    }
    f.res.write(JSON.stringify(flow) + '\n');
  }

  /** The last `limit` flows that match, oldest first. */
  flows(filter: FlowFilter, limit: number): Flow[] {
    this.reader?.drain();
    return this.history.last(filter, limit);
  }

  /** Streams matching flows as NDJSON until the client goes away: the last `limit` first. */
  follow(res: ServerResponse, filter: FlowFilter, limit: number): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    // Sent now, not with the first flow: a filter nothing matches yet must still answer (the caller waits on the headers).
    res.flushHeaders();
    for (const f of this.flows(filter, limit)) res.write(JSON.stringify(f) + '\n');
    const follower: Follower = { res, filter, skipped: 0 };
    this.followers.add(follower);
    res.on('close', () => this.followers.delete(follower));
  }

  top(windowSeconds: number): GoldenRow[] {
    this.reader?.drain();
    return this.golden.rows(Date.now(), windowSeconds);
  }

  stats(): Record<string, number> {
    return {
      seq: this.history.seq, history: this.history.length, followers: this.followers.size,
      userLost: this.userLost, followersSkipped: this.followersSkipped, metricsPort: this.metricsPort,
    };
  }

  async stop(): Promise<void> {
    for (const f of this.followers) f.res.end();
    this.followers.clear();
    this.reader?.close();
    this.reader = undefined;
    if (this.server) await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = undefined;
    rmSync(join(this.paths.runDir, 'metrics.addr'), { force: true });
  }
}
