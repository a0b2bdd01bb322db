/**
 * The agent's side of the node proxy: finds the proxy a previous agent
 * started (its control socket, ./control.ts) or starts one, detached in its
 * own session so that it outlives this agent; pushes the latest config on
 * every reconcile and to every new incarnation; hands request events to the
 * agent's sink; starts a new proxy (with backoff) when the one it talks to
 * is gone; and hands over from one proxy generation to the next.
 *
 * Hitless agent restarts: an agent restart leaves the proxy, its listener
 * and every connection it carries alone; the next agent adopts it after a
 * handshake.
 *
 * Hitless proxy restarts and upgrades (handover): the new generation starts
 * on the other slot's port (./messages.ts ProxySlot) while the old one keeps
 * serving; once it listens (and its tunnel endpoint does, beside the old one
 * with SO_REUSEPORT) one write of ebm_l7_proxy sends every new connect()
 * there, and the old generation is told to drain: it still accepts for a
 * moment (connects already sent to it), closes HTTP/1 keep-alive connections
 * after their current answer, GOAWAYs HTTP/2 and tunnel sessions, keeps TCP
 * pass-through and WebSocket connections until they end or the drain
 * deadline, then exits. Which slot is current is read back from that pinned
 * map, so an agent restarted in the middle knows which proxy to adopt; any
 * proxy in the other slot is told to drain (again: it is idempotent).
 * Triggered by `ebmesh proxy restart`, and by an agent finding a proxy of
 * another build, protocol or launch.
 *
 * Crashes: a proxy's primary killed with -9 leaves its workers serving
 * (src/proxy/orphan.ts) on the steered port, so the next generation starts
 * in the other slot and is steered to once it listens, as in a handover; the
 * orphans see the switch in ebm_l7_proxy and drain.
 *
 * Fail closed: while no proxy listens (every process of it died), the
 * kernel still steers flagged connections to its address, where they are
 * refused: an AuthorizationPolicy is never skipped.
 */
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { openPrivateLog, privateDir } from '../../host/private-files.js';
import { cgroup2Root } from '../../kernel/index.js';
import { inCgroup, cgroupV1Roots } from '../../host/cgroup.js';
import { tcpListens } from '../../host/listening.js';
import { EbmeshError } from '../../errors.js';
import type { RequestDoneEvent } from '../../proxy/index.js';
import type { TunnelFlow } from '../../tunnel/index.js';
import type { TunnelledFlow } from '../../proxy/tunnel-forward.js';
import type { ProxyRequestCounter } from '../../proxy/requests.js';
import {
  DRAIN_ACCEPT_GRACE_MS, DRAIN_PROTOCOL, PROXY_PROTOCOL, slotOfPort, slotPort,
  type FromProxy, type ProxyLaunch, type ProxyProcessStats, type ProxyPush, type ProxySlot, type ToProxy,
} from '../../proxy/messages.js';
import { PROXY_MAIN, ownedProxyPid, proxyBuild, readMessages, stopProxyPid, writeMessage, type ProxyFiles } from '../../proxy/control.js';

export interface SupervisorOptions {
  /** `port` is the base port: slot 0's; slot 1 listens on the next one. */
  launch: ProxyLaunch;
  files: (slot: ProxySlot) => ProxyFiles;
  /** The port ebm_l7_proxy holds now, if any: which generation is current outlives the agent there. */
  steeredPort: () => number | undefined;
  /** Points the kernel's steering at a generation's port (one map write). */
  steer: (port: number) => void;
  /** How long a replaced generation keeps its long-lived connections. */
  drainMs: () => number;
  onRequests: (counts: ProxyRequestCounter[], events: RequestDoneEvent[]) => void;
  onTunnel: (received: TunnelFlow[], sent: TunnelledFlow[]) => void;
  onLog?: (line: string) => void;
  /** Runs before every start of a generation: the agent (re)makes the cgroup the launch names and its programs. */
  beforeSpawn?: () => void;
  /**
   * The agent runs in a container (a cluster): the proxy also leaves the
   * container's cgroup v1 hierarchies, so the runtime does not stop it with
   * the agent's container (it outlives agents, as on a host).
   */
  leaveContainer?: boolean;
}

type Hello = FromProxy & { type: 'hello' };

/** One proxy process as this agent talks to it. */
interface Generation {
  slot: ProxySlot;
  sock: net.Socket;
  hello: Hello;
  ready: boolean;
  readyWaiters: Array<() => void>;
  /** Set once it is told to drain. */
  drainingSince?: number;
}

export interface HandoverReport {
  reason: string;
  from: { pid: number; port: number };
  to: { pid: number; port: number };
  at: string;
  /** From the handover's start until the new generation listened (and its tunnel endpoint, with mTLS). */
  readyMs: number;
  /** The old generation's drain, once it reported it: how long, and how many connections its deadline cut. */
  drainedMs?: number;
  cut?: number;
}

const HANDSHAKE_MS = 2000;
const SPAWN_WAIT_MS = 10_000;
/** The new endpoint normally listens at once beside the old one; an older proxy's endpoint holds the port alone until it is gone. */
const TUNNEL_LISTEN_WAIT_MS = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const flagList = (f: string | undefined): string[] => (f ?? '').split(/\s+/).filter(Boolean);

function sameLaunch(a: ProxyLaunch, b: ProxyLaunch): boolean {
  // A proxy of a build that served its metrics on the pod gateway (:15020, open to every workload) is replaced.
  if ((a as { metricsPort?: number }).metricsPort) return false;
  return a.host === b.host && (a.host6 ?? '') === (b.host6 ?? '') && a.mapPins === b.mapPins && a.workers === b.workers && flagList(a.nodeFlags).join(' ') === flagList(b.nodeFlags).join(' ') && (!b.cgroup || a.cgroup === b.cgroup);
}

export class ProxySupervisor {
  private cur: Generation | undefined;
  /** The generation a handover is starting: it gets every push too. */
  private next: Generation | undefined;
  /** Replaced generations still draining, by PID. */
  private readonly draining = new Map<number, Generation>();
  private push: ProxyPush | undefined;
  private stopped = false;
  private attaching = false;
  private handing: Promise<HandoverReport> | undefined;
  private backoffMs = 100;
  private retryTimer: NodeJS.Timeout | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, (s: ProxyProcessStats | undefined) => void>();
  private readyWaiters: Array<() => void> = [];
  private slot: ProxySlot;
  /** Proxies this agent started (handovers included). */
  starts = 0;
  /** Proxies this agent found running and took over. */
  adopted = 0;
  lastExit: string | undefined;
  lastHandover: HandoverReport | undefined;
  handovers = 0;

  constructor(private readonly opts: SupervisorOptions) {
    this.slot = slotOfPort(opts.launch.port, opts.steeredPort()) ?? 0;
  }

  get ready(): boolean { return !!this.cur?.ready; }
  get pid(): number | undefined { return this.cur?.hello.pid; }
  /** When the proxy this agent talks to started (it may be older than the agent). */
  get since(): string | undefined { return this.cur?.hello.since; }
  /** Where the current generation listens: the kernel steers there. */
  get port(): number { return slotPort(this.opts.launch.port, this.slot); }

  start(): void {
    if (this.cur || this.attaching || this.stopped) return;
    this.attaching = true;
    void this.attach().finally(() => { this.attaching = false; });
  }

  /** Why a running proxy should be handed over from, if it should. */
  private outdated(h: Hello): string | undefined {
    if (h.protocol !== PROXY_PROTOCOL) return `protocol ${h.protocol}, this agent speaks ${PROXY_PROTOCOL}`;
    if (!sameLaunch(h.launch, this.opts.launch)) return `launched as ${JSON.stringify(h.launch)}`;
    if (h.build !== proxyBuild()) return `build ${h.build ?? 'unknown'}, this agent's is ${proxyBuild()}`;
    return undefined;
  }

  /** Adopt the running proxy (handing over from it when it is outdated), else start one; retry with backoff. */
  private async attach(): Promise<void> {
    try {
      await this.drainOther();
      let slot = this.slot;
      let found = await this.dial(slot);
      if (found) this.adopted++;
      else {
        // A proxy that runs but does not answer is of no use to anyone.
        const hung = ownedProxyPid(this.opts.files(slot));
        if (hung) await stopProxyPid(hung);
        slot = await this.freeSlot();
        if (this.stopped) return;
        this.spawnProxy(slot);
        found = await this.waitDial(slot);
      }
      if (!found || this.stopped) {
        found?.sock.destroy();
        if (!this.stopped) this.retry('the node proxy did not answer on its control socket');
        return;
      }
      this.use(found);
      if (slot !== this.slot && !(await this.takeOver(found, slot))) return;
      const why = this.outdated(found.hello);
      if (why) {
        this.opts.onLog?.(`node proxy: pid ${found.hello.pid} is outdated (${why}): handing over`);
        this.handover(`outdated: ${why}`).catch((e: Error) => this.opts.onLog?.(`node proxy: handover failed: ${e.message}`));
      }
    } catch (e) {
      this.retry((e as Error).message);
    }
  }

  private listens(slot: ProxySlot): boolean {
    return tcpListens(this.opts.launch.host, slotPort(this.opts.launch.port, slot));
  }

  /**
   * Where a new generation can listen: the current slot, unless the workers
   * of a crashed primary still serve there; then the other one, once a
   * generation draining there let its port go.
   */
  private async freeSlot(): Promise<ProxySlot> {
    if (!this.listens(this.slot)) return this.slot;
    const other = (1 - this.slot) as ProxySlot;
    this.opts.onLog?.(`node proxy: workers without their primary still serve on port ${this.port}: the next generation starts on port ${slotPort(this.opts.launch.port, other)}`);
    const until = Date.now() + this.opts.drainMs() + 3000;
    while (this.listens(other) && !this.stopped && Date.now() < until) await sleep(100);
    return other;
  }

  /** A generation started beside a crashed one's orphaned workers: steered to once it listens (with mTLS, its endpoint too); they drain. */
  private async takeOver(g: Generation, slot: ProxySlot): Promise<boolean> {
    if (!(await this.untilServing(g)) || this.stopped || this.cur !== g) {
      if (this.cur === g) {
        this.cur = undefined;
        writeMessage(g.sock, { type: 'shutdown' } satisfies ToProxy);
        g.sock.destroy();
        this.retry(`the node proxy (pid ${g.hello.pid}) did not listen on port ${slotPort(this.opts.launch.port, slot)}`);
      }
      return false;
    }
    this.steerTo(slot);
    this.opts.onLog?.(`node proxy: pid ${g.hello.pid} on port ${this.port} took over; the orphaned workers drain`);
    return true;
  }

  /** A new generation serves once it listens and, with mTLS, its tunnel endpoint does too (peers are sent there from then on). */
  private async untilServing(g: Generation): Promise<boolean> {
    if (!(await this.waitGenReady(g, SPAWN_WAIT_MS))) return false;
    if (this.push?.tunnel) await this.waitTunnel(g);
    return true;
  }

  /** The switch: every connect() from here on goes to the generation in this slot. */
  private steerTo(slot: ProxySlot): void {
    this.opts.steer(slotPort(this.opts.launch.port, slot));
    this.slot = slot;
  }

  /** Whatever answers in the slot that is not current was replaced (or started by an interrupted handover): it drains. */
  private async drainOther(): Promise<void> {
    const other = (1 - this.slot) as ProxySlot;
    if ([...this.draining.values()].some((g) => g.slot === other)) return;
    const g = await this.dial(other);
    if (g) this.startDraining(g);
    else {
      const hung = ownedProxyPid(this.opts.files(other));
      if (hung) await stopProxyPid(hung);
    }
  }

  private retry(why: string): void {
    this.opts.onLog?.(`node proxy: ${why}; trying again in ${this.backoffMs} ms`);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.start(); }, this.backoffMs);
    this.retryTimer.unref();
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
  }

  /** Connects to a slot's proxy and says hello; undefined when nobody answers there. */
  private dial(slot: ProxySlot): Promise<Generation | undefined> {
    return new Promise((resolve) => {
      const sock = net.connect(this.opts.files(slot).socket);
      let gen: Generation | undefined;
      let settled = false;
      const done = (g: Generation | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(t);
        if (!g) sock.destroy();
        resolve(g);
      };
      const t = setTimeout(() => done(undefined), HANDSHAKE_MS);
      sock.once('error', () => done(undefined));
      sock.once('close', () => done(undefined));
      sock.once('connect', () => writeMessage(sock, { type: 'hello', protocol: PROXY_PROTOCOL } satisfies ToProxy));
      readMessages<FromProxy>(sock, (m) => {
        if (!gen) {
          if (m.type !== 'hello') return done(undefined);
          gen = { slot, sock, hello: m, ready: m.ready, readyWaiters: [] };
          sock.on('error', () => undefined);
          sock.on('close', () => this.onClose(gen!));
          return done(gen);
        }
        this.onMessage(gen, m);
      });
    });
  }

  private async waitDial(slot: ProxySlot): Promise<Generation | undefined> {
    const until = Date.now() + SPAWN_WAIT_MS;
    let found: Generation | undefined;
    while (!found && !this.stopped && Date.now() < until) {
      await sleep(50);
      found = await this.dial(slot);
    }
    return found;
  }

  private spawnProxy(slot: ProxySlot): void {
    const { launch } = this.opts;
    this.opts.beforeSpawn?.();
    const files = this.opts.files(slot);
    privateDir(dirname(files.socket));
    const args = [
      '--host', launch.host, ...(launch.host6 ? ['--host6', launch.host6] : []), '--port', String(slotPort(launch.port, slot)), '--pins', launch.mapPins,
      '--control', files.socket, '--pid-file', files.pidFile,
      ...(launch.workers ? ['--workers', String(launch.workers)] : []),
    ];
    const log = openPrivateLog(files.log);
    // Detached: its own session and process group, so nothing that stops the agent stops it.
    // node:cluster workers inherit the primary's flags: one setting profiles or tunes them all.
    const argv = [process.execPath, ...flagList(launch.nodeFlags), PROXY_MAIN, ...args];
    const v1 = this.opts.leaveContainer ? cgroupV1Roots() : [];
    const [file, fileArgs] = launch.cgroup ? inCgroup(join(cgroup2Root(), launch.cgroup), argv, v1) : [argv[0]!, argv.slice(1)];
    const child = spawn(file, fileArgs, { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.on('error', (e) => this.opts.onLog?.(`node proxy: ${e.message}`));
    child.unref();
    this.starts++;
  }

  /** Makes g the generation this agent configures and reports on. */
  private use(g: Generation): void {
    this.cur = g;
    // A proxy of another protocol is only kept serving until its successor listens: it gets no config it might misread.
    if (this.push && g.hello.protocol === PROXY_PROTOCOL) writeMessage(g.sock, { type: 'config', push: this.push } satisfies ToProxy);
    if (g.ready) this.onReady(g);
  }

  private onClose(g: Generation): void {
    if (this.draining.get(g.hello.pid) === g) {
      this.draining.delete(g.hello.pid);
      return;
    }
    if (this.cur !== g) return;
    this.cur = undefined;
    for (const w of this.waiting.values()) w(undefined);
    this.waiting.clear();
    if (this.stopped) return;
    this.lastExit = `${new Date().toISOString()} pid ${g.hello.pid}: control connection lost`;
    this.retry('lost the control connection');
  }

  private onReady(g: Generation): void {
    g.ready = true;
    for (const w of g.readyWaiters.splice(0)) w();
    if (g !== this.cur) return;
    this.backoffMs = 100;
    for (const w of this.readyWaiters.splice(0)) w();
  }

  private onMessage(g: Generation, m: FromProxy): void {
    switch (m.type) {
      case 'ready':
        this.onReady(g);
        break;
      case 'requests':
        // A draining generation's requests are requests too.
        this.opts.onRequests(m.counts ?? [], m.events);
        break;
      case 'tunnel':
        this.opts.onTunnel(m.received, m.sent);
        break;
      case 'stats':
        this.waiting.get(m.id)?.(m.stats);
        this.waiting.delete(m.id);
        break;
      case 'drained':
        if (this.lastHandover?.from.pid === g.hello.pid) Object.assign(this.lastHandover, { drainedMs: m.ms, cut: m.cut });
        this.opts.onLog?.(`node proxy: pid ${g.hello.pid} drained in ${m.ms} ms (${m.cut} connections cut at the deadline)`);
        break;
      case 'hello':
        break;
    }
  }

  private startDraining(g: Generation): void {
    g.drainingSince = Date.now();
    this.draining.set(g.hello.pid, g);
    const deadlineMs = this.opts.drainMs();
    if (g.hello.protocol >= DRAIN_PROTOCOL) {
      writeMessage(g.sock, { type: 'drain', graceMs: DRAIN_ACCEPT_GRACE_MS, deadlineMs } satisfies ToProxy);
      return;
    }
    // Older than draining: it serves what it carries until the deadline, then it is stopped (what is left is cut).
    this.opts.onLog?.(`node proxy: pid ${g.hello.pid} (protocol ${g.hello.protocol}) cannot drain; stopping it in ${deadlineMs} ms`);
    const pid = g.hello.pid;
    const files = this.opts.files(g.slot);
    setTimeout(() => { if (ownedProxyPid(files) === pid) void stopProxyPid(pid); }, deadlineMs).unref();
  }

  /** A slot is free once the generation draining there is gone (bounded by its deadline). */
  private async clearSlot(slot: ProxySlot): Promise<void> {
    const until = Date.now() + this.opts.drainMs() + 3000;
    // A crashed generation's orphaned workers there are draining too, by the same deadline.
    while (([...this.draining.values()].some((g) => g.slot === slot) || this.listens(slot)) && Date.now() < until) await sleep(100);
    const pid = ownedProxyPid(this.opts.files(slot));
    if (pid) await stopProxyPid(pid);
  }

  private waitGenReady(g: Generation, timeoutMs: number): Promise<boolean> {
    if (g.ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      g.readyWaiters.push(() => { clearTimeout(t); resolve(true); });
    });
  }

  /**
   * Starts the next generation in the other slot, switches the kernel to it
   * and drains the current one. One at a time: a second call while one runs
   * gets the same report.
   */
  handover(reason: string): Promise<HandoverReport> {
    this.handing ??= this.doHandover(reason).finally(() => { this.handing = undefined; });
    return this.handing;
  }

  private async doHandover(reason: string): Promise<HandoverReport> {
    const from = this.cur;
    if (!from || this.stopped) throw new EbmeshError('EBMESH_PROXY_NOT_RUNNING', 'no node proxy runs on this node (no Service is steered through it, and no tunnel)');
    const base = this.opts.launch.port;
    const to = (1 - from.slot) as ProxySlot;
    const t0 = Date.now();
    this.opts.onLog?.(`node proxy: handover from pid ${from.hello.pid} (${reason})`);
    await this.clearSlot(to);
    this.spawnProxy(to);
    const g = await this.waitDial(to);
    if (!g) throw new EbmeshError('EBMESH_PROXY_HANDOVER', `the new node proxy did not answer on ${this.opts.files(to).socket} within ${SPAWN_WAIT_MS} ms; the old one keeps serving`);
    this.next = g;
    try {
      if (this.push) writeMessage(g.sock, { type: 'config', push: this.push } satisfies ToProxy);
      if (!(await this.untilServing(g))) {
        writeMessage(g.sock, { type: 'shutdown' } satisfies ToProxy);
        g.sock.destroy();
        throw new EbmeshError('EBMESH_PROXY_HANDOVER', `the new node proxy (pid ${g.hello.pid}) did not listen within ${SPAWN_WAIT_MS} ms; the old one keeps serving`, { hint: `see ${this.opts.files(to).log}` });
      }
    } finally {
      this.next = undefined;
    }
    const readyMs = Date.now() - t0;
    this.steerTo(to);
    this.cur = g;
    this.handovers++;
    this.onReady(g);
    this.startDraining(from);
    this.lastHandover = { reason, from: { pid: from.hello.pid, port: slotPort(base, from.slot) }, to: { pid: g.hello.pid, port: slotPort(base, to) }, at: new Date().toISOString(), readyMs };
    this.opts.onLog?.(`node proxy: pid ${g.hello.pid} on port ${slotPort(base, to)} took over after ${readyMs} ms; pid ${from.hello.pid} drains`);
    return this.lastHandover;
  }

  /** With mTLS, peers are only sent to the new generation's tunnel endpoint once it listens. */
  private async waitTunnel(g: Generation): Promise<void> {
    const until = Date.now() + TUNNEL_LISTEN_WAIT_MS;
    while (Date.now() < until) {
      const s = await this.statsOf(g, 500);
      if (s?.tunnel?.listening) return;
      await sleep(50);
    }
    this.opts.onLog?.(`node proxy: the new tunnel endpoint does not listen yet (the old one holds the port alone); it will once the old one lets go`);
  }

  /** The whole config, every reconcile: the proxy swaps it without dropping connections. */
  configure(push: ProxyPush): void {
    this.push = push;
    if (!this.cur) this.start();
    else if (this.cur.hello.protocol === PROXY_PROTOCOL) writeMessage(this.cur.sock, { type: 'config', push } satisfies ToProxy);
    writeMessage(this.next?.sock, { type: 'config', push } satisfies ToProxy);
  }

  waitReady(timeoutMs = 10_000): Promise<boolean> {
    if (this.ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.readyWaiters.push(() => { clearTimeout(t); resolve(true); });
    });
  }

  private statsOf(g: Generation | undefined, timeoutMs: number): Promise<ProxyProcessStats | undefined> {
    if (!g || g.hello.protocol !== PROXY_PROTOCOL) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.waiting.delete(id); resolve(undefined); }, timeoutMs);
      this.waiting.set(id, (s) => { clearTimeout(t); resolve(s); });
      writeMessage(g.sock, { type: 'stats?', id } satisfies ToProxy);
    });
  }

  stats(timeoutMs = 2000): Promise<ProxyProcessStats | undefined> {
    return this.statsOf(this.cur, timeoutMs);
  }

  /** Replaced generations still draining. */
  drainingNow(): Array<{ pid: number; port: number; since: string }> {
    return [...this.draining.values()].map((g) => ({ pid: g.hello.pid, port: slotPort(this.opts.launch.port, g.slot), since: new Date(g.drainingSince ?? Date.now()).toISOString() }));
  }

  /** The agent is stopping, not the node: the proxies keep running (a draining one finishes) for the next agent. */
  detach(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.cur?.sock.destroy();
    for (const g of this.draining.values()) g.sock.destroy();
  }

  /** Teardown: every generation is stopped, by its PID. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    // PIDs before asking: a proxy removes its PID file as it goes.
    const pids = ([0, 1] as const).map((s) => ownedProxyPid(this.opts.files(s)));
    for (const g of [this.cur, ...this.draining.values()]) {
      writeMessage(g?.sock, { type: 'shutdown' } satisfies ToProxy);
      g?.sock.destroy();
    }
    await Promise.all(pids.map((pid) => (pid ? stopProxyPid(pid) : undefined)));
  }
}
