/**
 * The daemon's side of the node proxy: forks the proxy process, restarts it
 * when it dies (with backoff), pushes the latest config to every new
 * incarnation and on every reconcile, and hands request events to the
 * daemon's sink.
 *
 * Hitless by construction for everything that is not L7: the kernel steers
 * only flagged frontends here. While the proxy restarts, new connections to
 * flagged frontends are refused (fail closed: an AuthorizationPolicy must
 * not be skipped), and its in-flight L7 connections are reset.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../paths.js';
import type { RequestDoneEvent } from '../../proxy/index.js';
import type { ProxyRequestCounter } from './requests.js';
import type { FromProxy, ProxyProcessStats, ProxyPush, ToProxy } from './messages.js';

export interface SupervisorOptions {
  host: string;
  port: number;
  metricsPort: number;
  mapPins: string;
  workers?: number;
  logFd?: number;
  onRequests: (counts: ProxyRequestCounter[], events: RequestDoneEvent[]) => void;
  onLog?: (line: string) => void;
}

export class ProxySupervisor {
  private child: ChildProcess | undefined;
  private push: ProxyPush | undefined;
  private stopped = false;
  private backoffMs = 100;
  private restartTimer: NodeJS.Timeout | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, (s: ProxyProcessStats | undefined) => void>();
  private readyWaiters: Array<() => void> = [];
  ready = false;
  starts = 0;
  lastExit: string | undefined;

  constructor(private readonly opts: SupervisorOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    if (this.child || this.stopped) return;
    this.starts++;
    this.ready = false;
    const args = ['--host', this.opts.host, '--port', String(this.opts.port), '--metrics-port', String(this.opts.metricsPort), '--pins', this.opts.mapPins];
    if (this.opts.workers) args.push('--workers', String(this.opts.workers));
    const out = this.opts.logFd ?? 'inherit';
    const child = fork(join(PACKAGE_ROOT, 'dist/src/agent/proxy/main.js'), args, { stdio: ['ignore', out, out, 'ipc'] });
    this.child = child;
    child.on('message', (m: FromProxy) => this.onMessage(m));
    child.on('error', () => {});
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      this.ready = false;
      this.lastExit = `${new Date().toISOString()} code=${code} signal=${signal}`;
      for (const w of this.waiting.values()) w(undefined);
      this.waiting.clear();
      if (this.stopped) return;
      this.restartTimer = setTimeout(() => { this.restartTimer = undefined; this.start(); }, this.backoffMs);
      this.restartTimer.unref();
      this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    });
  }

  private onMessage(m: FromProxy): void {
    switch (m.type) {
      case 'hello':
        if (this.push) this.send({ type: 'config', push: this.push });
        break;
      case 'ready':
        this.ready = true;
        this.backoffMs = 100;
        for (const w of this.readyWaiters.splice(0)) w();
        break;
      case 'requests':
        this.opts.onRequests(m.counts ?? [], m.events);
        break;
      case 'stats':
        this.waiting.get(m.id)?.(m.stats);
        this.waiting.delete(m.id);
        break;
      case 'error':
        this.opts.onLog?.(`node proxy: ${m.message}`);
        break;
    }
  }

  private send(m: ToProxy): void {
    if (this.child?.connected) this.child.send(m);
  }

  /** The whole config, every reconcile: the proxy swaps it without dropping connections. */
  configure(push: ProxyPush): void {
    this.push = push;
    if (!this.child) this.start();
    else this.send({ type: 'config', push });
  }

  waitReady(timeoutMs = 10_000): Promise<boolean> {
    if (this.ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.readyWaiters.push(() => { clearTimeout(t); resolve(true); });
    });
  }

  stats(timeoutMs = 2000): Promise<ProxyProcessStats | undefined> {
    if (!this.child?.connected) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.waiting.delete(id); resolve(undefined); }, timeoutMs);
      this.waiting.set(id, (s) => { clearTimeout(t); resolve(s); });
      this.send({ type: 'stats?', id });
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(t);
  }
}
