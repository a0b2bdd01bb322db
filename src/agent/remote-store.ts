/**
 * An agent's store: a mirror of the part of the desired state its node may
 * see, kept by long-polling the control plane, so that NodeDaemon runs on it
 * unchanged. The agent's own writes (its workloads' status) apply to the
 * mirror at once and are sent on to the control plane, again and again while
 * it is down. The mirror is saved (0600) on every change: a restarted agent
 * starts from its last state even when the control plane is gone.
 *
 * After the first full view the control plane sends deltas (the keys that
 * changed since our revision); one that does not start at our revision
 * makes us ask for a full view. Values are frozen and shared, never copied:
 * a reader that finds the same object for a key knows it did not change.
 */
import { readFileSync, existsSync } from 'node:fs';
import { EbmeshError } from '../errors.js';
import { writePrivateFile } from '../host/private-files.js';
import { deepFreeze, type Entry, type Op, type Store, type WatchEvent } from '../store/index.js';
import type { NodeDesired, NodeRecord } from '../controlplane/index.js';
import type { Heartbeat } from '../controlplane/server.js';
import type { ApiClient } from '../api/client.js';
import { agentApi } from '../api/controlplane.js';

interface Saved {
  desired: NodeDesired;
}

export class RemoteStore implements Store {
  private desired: NodeDesired | undefined;
  /** The control plane's view, and that view with our own writes on top. */
  private base = new Map<string, unknown>();
  private entries = new Map<string, unknown>();
  private wantFull = false;
  private saveTimer: NodeJS.Timeout | undefined;
  /** Our writes not yet acknowledged by the control plane (key → op), and those acknowledged at a revision we have not seen yet. */
  private pending = new Map<string, Op>();
  private inflight = new Map<string, { op: Op; rev: number }>();
  private watchers = new Set<(ev: WatchEvent) => void>();
  private stopped = false;
  private flushing: Promise<void> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  lastContact: Date | undefined;
  lastError: string | undefined;

  constructor(
    private readonly cp: ApiClient,
    private readonly nodeName: string,
    private readonly cacheFile: string,
    private readonly heartbeat: () => Omit<Heartbeat, 'at'>,
  ) {
    if (existsSync(cacheFile)) {
      try {
        this.install((JSON.parse(readFileSync(cacheFile, 'utf8')) as Saved).desired, false);
      } catch { /* a broken cache: wait for the control plane */ }
    }
  }

  get node(): NodeRecord | undefined { return this.desired?.node; }
  /** Every node of the mesh, by name and index (where each one's pods are). */
  get nodes(): readonly NodeRecord[] { return this.desired?.nodes ?? []; }
  get local(): string[] { return this.desired?.local ?? []; }
  get hasState(): boolean { return this.desired !== undefined; }

  /** Waits for the first desired state (from the cache or the control plane). */
  async start(timeoutMs = 60_000): Promise<void> {
    void this.pollLoop();
    const until = Date.now() + timeoutMs;
    while (!this.desired) {
      if (Date.now() > until) throw new EbmeshError('EBMESH_CP_UNAVAILABLE', `no desired state from the control plane in ${timeoutMs / 1000}s: ${this.lastError ?? ''}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    this.flushTimer = setInterval(() => void this.flush(), 1000);
    this.flushTimer.unref();
  }

  private async pollLoop(): Promise<void> {
    let delay = 100;
    while (!this.stopped) {
      try {
        const after = this.wantFull ? 0 : this.desired?.revision ?? 0;
        const d = await this.cp.call(agentApi.desired, { node: this.nodeName, after, wait: 20 }, { timeoutMs: 30_000 });
        this.lastContact = new Date();
        this.lastError = undefined;
        delay = 100;
        if ('delta' in d && d.delta) {
          if (this.desired && d.delta.from === this.desired.revision) this.applyDelta(d);
          else this.wantFull = true;
        } else if ('entries' in d) {
          this.wantFull = false;
          this.install(d, true);
        }
      } catch (e) {
        this.lastError = (e as Error).message;
        if ((e as { code?: string }).code === 'EBMESH_FORBIDDEN') process.stderr.write(`control plane refused us: ${this.lastError}\n`);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  private install(d: NodeDesired, save: boolean): void {
    this.desired = { ...d, entries: [] };
    this.base = new Map(d.entries.map((e) => [e.key, deepFreeze(e.value)]));
    this.entries = new Map(this.base);
    for (const [k, v] of this.inflight) if (v.rev <= d.revision) this.inflight.delete(k);
    for (const { op } of this.inflight.values()) this.overlay(op);
    for (const op of this.pending.values()) this.overlay(op);
    if (save) this.save();
    this.emit({ revision: d.revision, ops: [] });
  }

  private applyDelta(d: NodeDesired): void {
    this.desired = { ...d, entries: [], delta: undefined };
    const ops: Op[] = [];
    for (const e of d.delta!.ops) {
      if (e.value === undefined) {
        this.base.delete(e.key);
        this.entries.delete(e.key);
        ops.push({ type: 'delete', key: e.key });
      } else {
        const v = deepFreeze(e.value);
        this.base.set(e.key, v);
        this.entries.set(e.key, v);
        ops.push({ type: 'put', key: e.key, value: v });
      }
    }
    for (const [k, v] of this.inflight) {
      if (v.rev > d.revision) continue;
      this.inflight.delete(k);
      if (this.base.has(k)) this.entries.set(k, this.base.get(k)); else this.entries.delete(k);
    }
    for (const { op } of this.inflight.values()) this.overlay(op);
    for (const op of this.pending.values()) this.overlay(op);
    this.scheduleSave();
    this.emit({ revision: d.revision, ops });
  }

  /** Deltas come often: the file follows within a second, not on each. */
  private scheduleSave(): void {
    this.saveTimer ??= setTimeout(() => { this.saveTimer = undefined; this.save(); }, 500);
  }

  private save(): void {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    if (!this.desired) return;
    const desired: NodeDesired = { ...this.desired, entries: [...this.base].map(([key, value]) => ({ key, value })) };
    writePrivateFile(this.cacheFile, JSON.stringify({ desired } satisfies Saved));
  }

  private overlay(op: Op): void {
    if (op.type === 'put') this.entries.set(op.key, op.value);
    else this.entries.delete(op.key);
  }

  private emit(ev: WatchEvent): void {
    for (const w of this.watchers) w(ev);
  }

  async revision(): Promise<number> {
    return this.desired?.revision ?? 0;
  }

  async get<T>(key: string): Promise<Entry<T> | undefined> {
    return this.entries.has(key) ? { key, value: this.entries.get(key) as T, modRevision: 0 } : undefined;
  }

  async list<T>(prefix: string): Promise<Entry<T>[]> {
    const keys: string[] = [];
    for (const k of this.entries.keys()) if (k.startsWith(prefix)) keys.push(k);
    return keys.sort().map((key) => ({ key, value: this.entries.get(key) as T, modRevision: 0 }));
  }

  /** Only the node's own status is written here; resources are the control plane's. */
  async commit(ops: Op[]): Promise<number> {
    for (const op of ops) {
      if (!op.key.startsWith('/status/')) throw new EbmeshError('EBMESH_READ_ONLY', `an agent cannot write ${op.key}: resources are applied at the control plane`);
      const frozen: Op = op.type === 'put' ? { ...op, value: deepFreeze(structuredClone(op.value)) } : op;
      this.pending.set(op.key, frozen);
      this.overlay(frozen);
    }
    this.emit({ revision: this.desired?.revision ?? 0, ops });
    void this.flush();
    return this.desired?.revision ?? 0;
  }

  /** Sends our pending writes and a heartbeat. */
  flush(): Promise<void> {
    this.flushing ??= (async () => {
      const ops = [...this.pending.values()];
      this.pending.clear();
      try {
        const r = await this.cp.call(agentApi.report, { node: this.nodeName, ops, heartbeat: this.heartbeat() }, { timeoutMs: 10_000 });
        for (const op of ops) this.inflight.set(op.key, { op, rev: r.revision });
      } catch (e) {
        // Keep them (unless newer ones replaced them) for the next try.
        for (const op of ops) if (!this.pending.has(op.key)) this.pending.set(op.key, op);
        this.lastError = (e as Error).message;
      }
    })().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  watch(fn: (ev: WatchEvent) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearInterval(this.flushTimer);
    if (this.saveTimer) this.save();
    await this.flushing;
    this.watchers.clear();
  }
}
