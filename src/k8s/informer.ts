/**
 * An informer: the current objects of one collection, kept by listing once
 * and then watching from the list's resourceVersion. After a watch gap the
 * API server can no longer replay (410 Gone) it lists again and replaces its
 * contents in one step: objects still there are never dropped in between, so
 * nothing the node still needs leaves its maps while it catches up.
 *
 * Objects are frozen and replaced, never changed in place: a reader can tell
 * an unchanged object by its identity.
 */
import { deepFreeze } from '../store/index.js';
import { describeError } from '../errors.js';
import { KubeError, type KubeClient, type KubeObject, type WatchEvent } from './client.js';

export interface InformerOptions {
  /** e.g. /api/v1/pods, /apis/discovery.k8s.io/v1/endpointslices */
  path: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** A collection whose kind the server may not have (a CRD not installed yet) is retried quietly. */
  optional?: boolean;
}

export const objectKey = (o: KubeObject): string => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name);

const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 5000;

export class Informer<T extends KubeObject> {
  private map = new Map<string, T>();
  private version = '';
  private readonly ctl = new AbortController();
  private running: Promise<void> | undefined;
  /** Lists done, watches restarted after a gap, errors: for status. */
  readonly stats = { lists: 0, relistsAfterGone: 0, events: 0, errors: 0 };
  lastError: string | undefined;
  synced = false;

  constructor(private readonly client: KubeClient, readonly opts: InformerOptions, private readonly onChange: () => void) {}

  get items(): ReadonlyMap<string, T> {
    return this.map;
  }

  private query(): Record<string, string> {
    return {
      ...(this.opts.fieldSelector ? { fieldSelector: this.opts.fieldSelector } : {}),
      ...(this.opts.labelSelector ? { labelSelector: this.opts.labelSelector } : {}),
    };
  }

  private async relist(): Promise<void> {
    const { items, resourceVersion } = await this.client.list<T>(this.opts.path, this.query());
    const next = new Map<string, T>();
    for (const o of items) {
      const key = objectKey(o);
      const old = this.map.get(key);
      // The same version is the same object: keep the old one, so readers see it unchanged.
      next.set(key, old && old.metadata.resourceVersion === o.metadata.resourceVersion ? old : deepFreeze(o));
    }
    this.map = next;
    this.version = resourceVersion;
    this.stats.lists++;
  }

  private apply(ev: WatchEvent<T>): void {
    this.stats.events++;
    if (ev.type === 'BOOKMARK') {
      this.version = ev.object.metadata.resourceVersion;
      return;
    }
    if (ev.type === 'ERROR') return;
    const o = ev.object;
    this.version = o.metadata.resourceVersion ?? this.version;
    const key = objectKey(o);
    if (ev.type === 'DELETED') this.map.delete(key);
    else this.map.set(key, deepFreeze(o));
    this.onChange();
  }

  /** Resolves once the first list is in; keeps watching until stop(). */
  start(): Promise<void> {
    let first: (() => void) | undefined;
    const listed = new Promise<void>((r) => (first = r));
    this.running = this.loop(() => first?.());
    return listed;
  }

  private async loop(listed: () => void): Promise<void> {
    const signal = this.ctl.signal;
    let delay = RETRY_MIN_MS;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
          this.synced = true;
          listed();
          this.onChange();
        }
        await this.client.watch<T>(this.opts.path, this.version, this.query(), (ev) => this.apply(ev), signal);
        delay = RETRY_MIN_MS;
        this.lastError = undefined;
      } catch (e) {
        if (signal.aborted) break;
        if (e instanceof KubeError && e.status === 410) {
          // The server cannot replay from our version: list again.
          this.stats.relistsAfterGone++;
          needList = true;
          continue;
        }
        if (e instanceof KubeError && e.status === 404 && this.opts.optional) {
          // The kind is not installed (yet): nothing of it exists.
          if (!this.synced) { this.synced = true; listed(); }
        } else {
          this.stats.errors++;
          this.lastError = describeError(e);
        }
        needList = needList || !(e instanceof KubeError);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
  }

  async stop(): Promise<void> {
    this.ctl.abort();
    await this.running;
  }
}
