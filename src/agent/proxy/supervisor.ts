/**
 * The agent's side of the node proxy: finds the proxy a previous agent
 * started (its control socket, ./control.ts) or starts one, detached in its
 * own session so that it outlives this agent; pushes the latest config on
 * every reconcile and to every new incarnation; hands request events to the
 * agent's sink; starts a new proxy (with backoff) when the one it talks to
 * is gone.
 *
 * Hitless: an agent restart leaves the proxy, its listener and every
 * connection it carries alone; the next agent adopts it after a handshake
 * (protocol version and launch parameters must match, else it is replaced).
 * Fail closed: while no proxy listens (it crashed and is being restarted),
 * the kernel still steers flagged connections to its address, where they
 * are refused: an AuthorizationPolicy is never skipped.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { PACKAGE_ROOT } from '../../paths.js';
import type { RequestDoneEvent } from '../../proxy/index.js';
import type { TunnelFlow } from '../../tunnel/index.js';
import type { TunnelledFlow } from './tunnel-forward.js';
import type { ProxyRequestCounter } from './requests.js';
import { PROXY_PROTOCOL, type FromProxy, type ProxyLaunch, type ProxyProcessStats, type ProxyPush, type ToProxy } from './messages.js';
import { ownedProxyPid, readMessages, stopProxyPid, writeMessage, type ProxyFiles } from './control.js';

export interface SupervisorOptions {
  launch: ProxyLaunch;
  files: ProxyFiles;
  onRequests: (counts: ProxyRequestCounter[], events: RequestDoneEvent[]) => void;
  onTunnel: (received: TunnelFlow[], sent: TunnelledFlow[]) => void;
  onLog?: (line: string) => void;
}

type Hello = FromProxy & { type: 'hello' };

const HANDSHAKE_MS = 2000;
const SPAWN_WAIT_MS = 10_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const flagList = (f: string | undefined): string[] => (f ?? '').split(/\s+/).filter(Boolean);

function sameLaunch(a: ProxyLaunch, b: ProxyLaunch): boolean {
  return a.host === b.host && a.port === b.port && a.metricsPort === b.metricsPort && a.mapPins === b.mapPins && a.workers === b.workers && flagList(a.nodeFlags).join(' ') === flagList(b.nodeFlags).join(' ');
}

export class ProxySupervisor {
  private sock: net.Socket | undefined;
  private push: ProxyPush | undefined;
  private stopped = false;
  private attaching = false;
  private backoffMs = 100;
  private retryTimer: NodeJS.Timeout | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, (s: ProxyProcessStats | undefined) => void>();
  private readyWaiters: Array<() => void> = [];
  ready = false;
  /** Proxies this agent started. */
  starts = 0;
  /** Proxies this agent found running and took over. */
  adopted = 0;
  pid: number | undefined;
  /** When the proxy this agent talks to started (it may be older than the agent). */
  since: string | undefined;
  lastExit: string | undefined;

  constructor(private readonly opts: SupervisorOptions) {}

  start(): void {
    if (this.sock || this.attaching || this.stopped) return;
    this.attaching = true;
    void this.attach().finally(() => { this.attaching = false; });
  }

  /** Adopt the running proxy if it is one we would start, else start one; retry with backoff. */
  private async attach(): Promise<void> {
    try {
      let found = await this.dial();
      if (found && (found.hello.protocol !== PROXY_PROTOCOL || !sameLaunch(found.hello.launch, this.opts.launch))) {
        this.opts.onLog?.(`node proxy: replacing pid ${found.hello.pid} (protocol ${found.hello.protocol}, ${JSON.stringify(found.hello.launch)})`);
        writeMessage(found.sock, { type: 'shutdown' } satisfies ToProxy);
        found.sock.destroy();
        await stopProxyPid(found.hello.pid);
        found = undefined;
      }
      if (found) this.adopted++;
      else {
        // A proxy that runs but does not answer is of no use to anyone.
        const hung = ownedProxyPid(this.opts.files);
        if (hung) await stopProxyPid(hung);
        if (this.stopped) return;
        this.spawnProxy();
        const until = Date.now() + SPAWN_WAIT_MS;
        while (!found && !this.stopped && Date.now() < until) {
          await sleep(50);
          found = await this.dial();
        }
      }
      if (!found || this.stopped) {
        found?.sock.destroy();
        if (!this.stopped) this.retry('the node proxy did not answer on its control socket');
        return;
      }
      this.use(found.sock, found.hello);
    } catch (e) {
      this.retry((e as Error).message);
    }
  }

  private retry(why: string): void {
    this.opts.onLog?.(`node proxy: ${why}; trying again in ${this.backoffMs} ms`);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.start(); }, this.backoffMs);
    this.retryTimer.unref();
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
  }

  /** Connects and says hello; undefined when nobody answers there. */
  private dial(): Promise<{ sock: net.Socket; hello: Hello } | undefined> {
    return new Promise((resolve) => {
      const sock = net.connect(this.opts.files.socket);
      let settled = false;
      const done = (r: { sock: net.Socket; hello: Hello } | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(t);
        if (!r) sock.destroy();
        resolve(r);
      };
      const t = setTimeout(() => done(undefined), HANDSHAKE_MS);
      sock.once('error', () => done(undefined));
      sock.once('close', () => done(undefined));
      sock.once('connect', () => writeMessage(sock, { type: 'hello', protocol: PROXY_PROTOCOL } satisfies ToProxy));
      let first = true;
      readMessages<FromProxy>(sock, (m) => {
        if (first) {
          first = false;
          if (m.type === 'hello') done({ sock, hello: m });
          else done(undefined);
          return;
        }
        this.onMessage(m);
      });
    });
  }

  private spawnProxy(): void {
    const { launch, files } = this.opts;
    mkdirSync(dirname(files.socket), { recursive: true });
    mkdirSync(dirname(files.log), { recursive: true });
    const args = [
      '--host', launch.host, '--port', String(launch.port), '--metrics-port', String(launch.metricsPort), '--pins', launch.mapPins,
      '--control', files.socket, '--pid-file', files.pidFile,
      ...(launch.workers ? ['--workers', String(launch.workers)] : []),
    ];
    const log = openSync(files.log, 'a');
    // Detached: its own session and process group, so nothing that stops the agent stops it.
    // node:cluster workers inherit the primary's flags: one setting profiles or tunes them all.
    const child = spawn(process.execPath, [...flagList(launch.nodeFlags), join(PACKAGE_ROOT, 'dist/src/agent/proxy/main.js'), ...args], { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.on('error', (e) => this.opts.onLog?.(`node proxy: ${e.message}`));
    child.unref();
    this.starts++;
  }

  private use(sock: net.Socket, hello: Hello): void {
    this.sock = sock;
    this.pid = hello.pid;
    this.since = hello.since;
    sock.on('error', () => undefined);
    sock.on('close', () => this.onClose(sock));
    if (this.push) writeMessage(sock, { type: 'config', push: this.push } satisfies ToProxy);
    if (hello.ready) this.onReady();
  }

  private onClose(sock: net.Socket): void {
    if (this.sock !== sock) return;
    this.sock = undefined;
    this.ready = false;
    for (const w of this.waiting.values()) w(undefined);
    this.waiting.clear();
    if (this.stopped) return;
    this.lastExit = `${new Date().toISOString()} pid ${this.pid}: control connection lost`;
    this.retry('lost the control connection');
  }

  private onReady(): void {
    this.ready = true;
    this.backoffMs = 100;
    for (const w of this.readyWaiters.splice(0)) w();
  }

  private onMessage(m: FromProxy): void {
    switch (m.type) {
      case 'ready':
        this.onReady();
        break;
      case 'requests':
        this.opts.onRequests(m.counts ?? [], m.events);
        break;
      case 'tunnel':
        this.opts.onTunnel(m.received, m.sent);
        break;
      case 'stats':
        this.waiting.get(m.id)?.(m.stats);
        this.waiting.delete(m.id);
        break;
      case 'hello':
        break;
    }
  }

  /** The whole config, every reconcile: the proxy swaps it without dropping connections. */
  configure(push: ProxyPush): void {
    this.push = push;
    if (!this.sock) this.start();
    else writeMessage(this.sock, { type: 'config', push } satisfies ToProxy);
  }

  waitReady(timeoutMs = 10_000): Promise<boolean> {
    if (this.ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.readyWaiters.push(() => { clearTimeout(t); resolve(true); });
    });
  }

  stats(timeoutMs = 2000): Promise<ProxyProcessStats | undefined> {
    if (!this.sock) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.waiting.delete(id); resolve(undefined); }, timeoutMs);
      this.waiting.set(id, (s) => { clearTimeout(t); resolve(s); });
      writeMessage(this.sock, { type: 'stats?', id } satisfies ToProxy);
    });
  }

  /** The agent is stopping, not the node: the proxy keeps running for the next agent. */
  detach(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.sock?.destroy();
  }

  /** Teardown: the proxy is stopped, by its PID. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    // Its PID before asking: the proxy removes its PID file as it goes.
    const pid = ownedProxyPid(this.opts.files);
    writeMessage(this.sock, { type: 'shutdown' } satisfies ToProxy);
    this.sock?.destroy();
    if (pid) await stopProxyPid(pid);
  }
}
