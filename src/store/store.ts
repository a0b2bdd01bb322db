/**
 * The store: a small etcd-shaped key/value interface (revisions, atomic
 * multi-key commits, watch), so the embedded store and etcd are
 * interchangeable behind it. The store computes nothing.
 */
export interface Entry<T = unknown> {
  key: string;
  value: T;
  modRevision: number;
}

export type Op =
  | { type: 'put'; key: string; value: unknown }
  | { type: 'delete'; key: string };

export interface WatchEvent {
  revision: number;
  ops: Op[];
}

/** One member of a replicated store, as the client last found it. */
export interface StoreMember {
  endpoint: string;
  healthy: boolean;
  /** Why it is not, as the client saw it. */
  error?: string;
}

/** Values a store returns are shared and frozen: copy before changing one. */
export interface Store {
  revision(): Promise<number>;
  get<T = unknown>(key: string): Promise<Entry<T> | undefined>;
  list<T = unknown>(prefix: string): Promise<Entry<T>[]>;
  /** Applies every op or none; returns the new revision. */
  commit(ops: Op[]): Promise<number>;
  /** fromRevision: deliver every revision from it on (etcd; the embedded store starts now). */
  watch(fn: (ev: WatchEvent) => void, fromRevision?: number): () => void;
  close(): Promise<void>;
  /** A replicated store: each member and whether it answers now (for status). */
  members?(): Promise<StoreMember[]>;
}

/**
 * Freezes a value and everything in it, once, when it enters a store: the
 * value is then shared by every reader, none of which copies it.
 */
export function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v as object)) deepFreeze(x);
  }
  return v;
}
