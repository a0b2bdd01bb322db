/**
 * Puts the node proxy in the mesh on one node: with the plan's proxy part,
 * adopts the running proxy or starts it on the node's bridge address when
 * something needs it, tells the kernel where it listens, and pushes its
 * config on every pass. Applied before the LB maps are written, so a
 * frontend is never flagged L7 before a proxy answers on the address the
 * kernel uses.
 */
import { join } from 'node:path';
import type { ClientIdentity } from '../../controlplane/index.js';
import type { Cidr } from '../../net/ipam.js';
import type { ProxyPlan } from '../plan.js';
import { cgroup2Root } from '../../kernel/index.js';
import { ensureBridge, gatewayOf } from '../../host/network.js';
import { cgroupId, ensureCgroup } from '../../host/cgroup.js';
import type { InstancePaths } from '../../paths.js';
import type { Datapath } from '../datapath.js';
import type { CallerEntry, ProxyProcessStats, ProxyPush } from '../../proxy/messages.js';
import type { TunnelFlow } from '../../tunnel/index.js';
import type { TunnelledFlow } from '../../proxy/tunnel-forward.js';
import { DEFAULT_DRAIN_MS, PROXY_DEFAULT_NODE_FLAGS, PROXY_PORT } from '../../proxy/messages.js';
import { ProxyRequestLog, type ProxyRequestCounter } from '../../proxy/requests.js';
import { ProxySupervisor, type HandoverReport } from './supervisor.js';
import { EbmeshError } from '../../errors.js';
import { ownedProxyPid, proxyFiles } from '../../proxy/control.js';

/** The callers the proxy can name, by the cgroup id (resolved now) and the address of their sockets. */
export function callerTables(callers: readonly ClientIdentity[]): Pick<ProxyPush, 'byCgroup' | 'byIp'> {
  const byCgroup: Array<[string, CallerEntry]> = [];
  const byIp: Array<[string, CallerEntry]> = [];
  for (const c of callers) {
    const entry: CallerEntry = { identity: c.identity, namespace: c.namespace, workload: `${c.namespace}/${c.name}` };
    const cg = c.cgroup && (c.cgroup.startsWith('/') ? c.cgroup : join(cgroup2Root(), c.cgroup));
    const id = cg && cgroupId(cg)?.toString();
    if (id) byCgroup.push([id, entry]);
    if (c.ip) byIp.push([c.ip, entry]);
    if (c.ipv6) byIp.push([c.ipv6, entry]);
  }
  return { byCgroup, byIp };
}

/** Cross-node mTLS streams that ended, as the proxy reports them in batches. */
export interface TunnelSink {
  /** Received by this node's endpoint from a peer node. */
  received(f: TunnelFlow): void;
  /** Sent by this node's proxy into the tunnel. */
  sent(f: TunnelledFlow): void;
}

const RECENT_TUNNEL_FLOWS = 200;

/** The node proxy as the agent sees it (GET /v1/status, GET /v1/proxy). */
export interface ProxyStatus {
  listen: string | undefined;
  pid: number | undefined;
  since: string | undefined;
  ready: boolean;
  starts: number;
  adopted: number;
  handovers: number;
  lastHandover: HandoverReport | undefined;
  draining: Array<{ pid: number; port: number; since: string }>;
  drainTimeoutMs: number;
  lastExit: string | undefined;
  steered: string[];
  stats: ProxyProcessStats | undefined;
  requests: number;
  byRoute: ProxyRequestCounter[];
}

export class NodeProxyWiring {
  readonly requests = new ProxyRequestLog();
  /** The endpoint's most recent received streams (GET /v1/tunnel). */
  readonly recentTunnel: TunnelFlow[] = [];
  /** observe hangs here. */
  readonly tunnelSinks: TunnelSink[] = [];
  private supervisor: ProxySupervisor | undefined;
  private steered: string[] = [];
  private drainMs = DEFAULT_DRAIN_MS;
  address: { host: string; host6?: string; port: number } | undefined;

  constructor(
    private readonly paths: InstancePaths,
    private readonly workers?: number,
    /** Extra node flags for the proxy processes (profiling, GC tuning): see docs/proxy.md. */
    private readonly nodeFlags = '',
    /**
     * In a cluster: the CNI, not the mesh, makes the node's pod bridge and
     * owns its address; the agent runs in a container the proxy must leave.
     */
    private readonly cluster = false,
  ) {}

  /**
   * Applied first in every pass; returns once a needed proxy listens.
   * `tunnel` (cross-node mTLS): the proxy is needed as soon as some
   * destination of another node is tunnelled, and it must listen before the
   * kernel is told to steer those (the caller writes ebm_xnode_dsts after).
   */
  async apply(plan: ProxyPlan, subnet: Cidr, datapath: Datapath, subnet6?: Cidr): Promise<void> {
    const { steered, routing, tunnel } = plan;
    this.steered = steered;
    this.drainMs = plan.drainMs;
    // Nothing needs the proxy yet (no L7 rule, no tunnel) and no earlier agent left one running (in either slot): no proxy at all.
    if (!steered.length && !tunnel && !this.supervisor && !ownedProxyPid(proxyFiles(this.paths, 0)) && !ownedProxyPid(proxyFiles(this.paths, 1))) return;
    const host = gatewayOf(subnet);
    // A dual-stack node's proxy listens on its IPv6 address too: IPv6 connections are steered there.
    const host6 = subnet6 && gatewayOf(subnet6);
    if (!this.supervisor) {
      if (!this.cluster) ensureBridge(this.paths.bridge, subnet, subnet6);
      // Before a generation starts its listener (so every socket it accepts is made
      // inside), and on every agent start (a new build's program goes into the pinned link).
      const cgroup = join(cgroup2Root(), this.paths.proxyCgroupName);
      const prepareCgroup = (): void => {
        ensureCgroup(cgroup);
        datapath.attachProxy(cgroup);
      };
      prepareCgroup();
      this.supervisor = new ProxySupervisor({
        launch: { host, ...(host6 ? { host6 } : {}), port: PROXY_PORT, mapPins: this.paths.mapPins, workers: this.workers ?? 0, nodeFlags: `${PROXY_DEFAULT_NODE_FLAGS} ${this.nodeFlags}`.trim(), cgroup: `/${this.paths.proxyCgroupName}` },
        files: (slot) => proxyFiles(this.paths, slot),
        steeredPort: () => datapath.l7Proxy()?.port,
        steer: (port) => {
          datapath.setL7Proxy(host, port, host6);
          this.address = { host, port, ...(host6 ? { host6 } : {}) };
        },
        drainMs: () => this.drainMs,
        onRequests: (counts, events) => this.requests.onProxyBatch(counts, events),
        onTunnel: (received, sent) => this.onTunnel(received, sent),
        onLog: (l) => process.stderr.write(`${l}\n`),
        beforeSpawn: prepareCgroup,
        leaveContainer: this.cluster,
      });
    }
    this.supervisor.configure({ routing, ...callerTables(plan.callers), ...(tunnel ? { tunnel } : {}), drainMs: this.drainMs });
    if (this.address?.host !== host || this.address.host6 !== host6) {
      // Fail closed from here on: steered connections reach the proxy or are refused.
      // The port is the current generation's (read back from this map by the supervisor, so an agent restart keeps it).
      datapath.setL7Proxy(host, this.supervisor.port, host6);
      this.address = { host, port: this.supervisor.port, ...(host6 ? { host6 } : {}) };
    }
    // Wait for a starting proxy, but never hold the node's other updates
    // hostage: a proxy that does not come up leaves steered Services
    // refusing (fail closed) while everything else is reconciled.
    if (!(await this.supervisor.waitReady(10_000))) process.stderr.write('node proxy: not listening after 10 s; steered Services refuse connections until it does\n');
  }

  /** `ebmesh proxy restart`: a new proxy generation takes over; the old one drains. */
  async restart(reason = 'requested'): Promise<HandoverReport> {
    if (!this.supervisor) throw new EbmeshError('EBMESH_PROXY_NOT_RUNNING', 'no node proxy runs on this node (no Service is steered through it, and no tunnel)');
    return this.supervisor.handover(reason);
  }

  private onTunnel(received: readonly TunnelFlow[], sent: readonly TunnelledFlow[]): void {
    this.recentTunnel.push(...received);
    if (this.recentTunnel.length > RECENT_TUNNEL_FLOWS) this.recentTunnel.splice(0, this.recentTunnel.length - RECENT_TUNNEL_FLOWS);
    for (const s of this.tunnelSinks) {
      for (const f of received) s.received(f);
      for (const f of sent) s.sent(f);
    }
  }

  /** The proxy process's counters (and its tunnel endpoint's status); undefined while no proxy answers. */
  stats(): Promise<ProxyProcessStats | undefined> {
    return this.supervisor?.stats() ?? Promise.resolve(undefined);
  }

  async status(): Promise<ProxyStatus | undefined> {
    if (!this.supervisor) return undefined;
    return {
      listen: this.address && `${this.address.host}:${this.address.port}`,
      pid: this.supervisor.pid,
      since: this.supervisor.since,
      ready: this.supervisor.ready,
      starts: this.supervisor.starts,
      adopted: this.supervisor.adopted,
      handovers: this.supervisor.handovers,
      lastHandover: this.supervisor.lastHandover,
      draining: this.supervisor.drainingNow(),
      drainTimeoutMs: this.drainMs,
      lastExit: this.supervisor.lastExit,
      steered: this.steered,
      stats: await this.supervisor.stats(),
      requests: this.requests.total,
      byRoute: this.requests.counterList(),
    };
  }

  /** The agent stops: the proxy stays, with its connections, for the next agent; teardown stops it. */
  async stop(teardown: boolean): Promise<void> {
    if (teardown) await this.supervisor?.shutdown();
    else this.supervisor?.detach();
  }
}
