/**
 * A Store that answers reads from memory: a mirror of another store (etcd),
 * listed once and then kept by its watch. The control plane reads the whole
 * desired state on every apply and for every node's view; over the etcd
 * gateway that is megabytes of base64 JSON per read, seconds at 10,000s of
 * resources. Writes go to the store underneath, and return once the mirror
 * holds them (read-your-writes). When etcd says the watch lost revisions
 * (compaction), the mirror lists again and tells its watchers with an empty
 * event, as the etcd store does.
 */
import { deepFreeze, type Entry, type Op, type Store, type StoreMember, type WatchEvent } from './store.js';

export interface ListableStore extends Store {
  listAt<T>(prefix: string): Promise<{ revision: number; entries: Entry<T>[] }>;
}

export class MirrorStore implements Store {
  private entries = new Map<string, { value: unknown; modRevision: number }>();
  private rev = 0;
  private watchers = new Set<(ev: WatchEvent) => void>();
  private waiters: Array<{ rev: number; resolve: () => void }> = [];
  private unwatch: (() => void) | undefined;
  private reloading: Promise<void> | undefined;

  constructor(private readonly inner: ListableStore) {}

  async start(): Promise<void> {
    await this.load();
  }

  private async load(): Promise<void> {
    this.unwatch?.();
    const { revision, entries } = await this.inner.listAt('/');
    this.entries = new Map(entries.map((e) => [e.key, { value: deepFreeze(e.value), modRevision: e.modRevision }]));
    this.rev = revision;
    this.unwatch = this.inner.watch((ev) => this.onEvent(ev), revision + 1);
    this.wake();
  }

  private onEvent(ev: WatchEvent): void {
    if (ev.ops.length === 0) {
      // Revisions were lost to us: list again, then say so.
      this.reloading ??= (async () => {
        for (;;) {
          try { await this.load(); break; } catch { await new Promise((r) => setTimeout(r, 500)); }
        }
      })().finally(() => (this.reloading = undefined));
      void this.reloading.then(() => this.emit({ revision: this.rev, ops: [] }));
      return;
    }
    if (ev.revision <= this.rev) return; // listed already
    for (const op of ev.ops) {
      if (op.type === 'put') this.entries.set(op.key, { value: deepFreeze(op.value), modRevision: ev.revision });
      else this.entries.delete(op.key);
    }
    this.rev = ev.revision;
    this.wake();
    this.emit(ev);
  }

  private wake(): void {
    const due = this.waiters.filter((w) => w.rev <= this.rev);
    this.waiters = this.waiters.filter((w) => w.rev > this.rev);
    for (const w of due) w.resolve();
  }

  private emit(ev: WatchEvent): void {
    for (const w of this.watchers) w(ev);
  }

  /** Resolves once the mirror holds revision rev (or after timeoutMs: the watch may be reconnecting). */
  private until(rev: number, timeoutMs = 10_000): Promise<void> {
    if (rev <= this.rev) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.waiters = this.waiters.filter((w) => w !== waiter); resolve(); }, timeoutMs);
      const waiter = { rev, resolve: () => { clearTimeout(t); resolve(); } };
      this.waiters.push(waiter);
    });
  }

  async revision(): Promise<number> {
    return this.rev;
  }

  async get<T>(key: string): Promise<Entry<T> | undefined> {
    const e = this.entries.get(key);
    return e && { key, value: e.value as T, modRevision: e.modRevision };
  }

  async list<T>(prefix: string): Promise<Entry<T>[]> {
    const keys: string[] = [];
    for (const k of this.entries.keys()) if (k.startsWith(prefix)) keys.push(k);
    keys.sort();
    return keys.map((key) => {
      const e = this.entries.get(key)!;
      return { key, value: e.value as T, modRevision: e.modRevision };
    });
  }

  async commit(ops: Op[]): Promise<number> {
    const rev = await this.inner.commit(ops);
    await this.until(rev);
    return rev;
  }

  /** From now on (fromRevision is the inner store's business). */
  watch(fn: (ev: WatchEvent) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  members(): Promise<StoreMember[]> {
    return this.inner.members?.() ?? Promise.resolve([]);
  }

  async close(): Promise<void> {
    this.unwatch?.();
    this.watchers.clear();
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
    await this.inner.close();
  }
}
