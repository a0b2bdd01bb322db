import { chmodSync, readFileSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { EbmeshError } from '../errors.js';
import { privateDir, writePrivateFile, PRIVATE_FILE_MODE } from '../host/private-files.js';
import { deepFreeze, type Entry, type Op, type Store, type WatchEvent } from './store.js';

interface FileState {
  revision: number;
  entries: Record<string, { value: unknown; modRevision: number }>;
}

/**
 * The default store for one host: a JSON file rewritten atomically (write,
 * fsync, rename) on every commit, so a crash leaves the old or the new
 * state, never half of one.
 */
export class EmbeddedStore implements Store {
  private state: FileState;
  private watchers = new Set<(ev: WatchEvent) => void>();

  constructor(private readonly path: string) {
    privateDir(dirname(path));
    if (existsSync(path)) {
      // A store an older version left world-readable: it holds workloads' commands and env.
      chmodSync(path, PRIVATE_FILE_MODE);
      try {
        this.state = deepFreeze(JSON.parse(readFileSync(path, 'utf8')) as FileState);
      } catch (e) {
        throw new EbmeshError('EBMESH_STORE_CORRUPT', `cannot read the store: ${(e as Error).message}`, { where: path });
      }
    } else {
      this.state = { revision: 0, entries: {} };
    }
  }

  async revision(): Promise<number> {
    return this.state.revision;
  }

  async get<T>(key: string): Promise<Entry<T> | undefined> {
    const e = this.state.entries[key];
    return e && { key, value: e.value as T, modRevision: e.modRevision };
  }

  async list<T>(prefix: string): Promise<Entry<T>[]> {
    return Object.keys(this.state.entries)
      .filter((k) => k.startsWith(prefix))
      .sort()
      .map((k) => {
        const e = this.state.entries[k]!;
        return { key: k, value: e.value as T, modRevision: e.modRevision };
      });
  }

  async commit(ops: Op[]): Promise<number> {
    if (ops.length === 0) return this.state.revision;
    const next: FileState = { revision: this.state.revision + 1, entries: { ...this.state.entries } };
    for (const op of ops) {
      if (op.type === 'put') next.entries[op.key] = { value: deepFreeze(structuredClone(op.value)), modRevision: next.revision };
      else delete next.entries[op.key];
    }
    try {
      writePrivateFile(this.path, JSON.stringify(next), { fsync: true });
    } catch (e) {
      // The file still holds the last commit (written aside, then renamed) and so does memory: nothing of this one is kept.
      const code = (e as NodeJS.ErrnoException).code;
      throw new EbmeshError('EBMESH_STORE_WRITE', `cannot write the store: ${code === 'ENOSPC' ? 'no space left on its disk' : (code ?? (e as Error).message)}; nothing of this change was stored`, {
        where: this.path, hint: code === 'ENOSPC' ? 'free space on the store\'s filesystem, then apply again' : 'check the store\'s filesystem, then apply again',
      });
    }
    this.state = next;
    const ev = { revision: next.revision, ops };
    for (const w of this.watchers) w(ev);
    return next.revision;
  }

  watch(fn: (ev: WatchEvent) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  async close(): Promise<void> {
    this.watchers.clear();
  }
}
