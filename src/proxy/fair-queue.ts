/**
 * Multi-tenant admission. The proxy forwards at most maxConcurrentRequests at
 * once and a namespace at most maxConcurrentPerNamespace; the rest wait in one
 * queue per namespace. A freed slot goes to the next namespace in round-robin
 * order that has work and room, so a tenant that floods only ever queues
 * behind itself. Full queues and long waits shed load with 503, and a
 * waiter whose client left is dropped from its queue: under overload the
 * proxy must not spend a slot on an answer nobody reads.
 */
import type { ClientPresence } from './upstream.js';
import { ExpectedError } from './expected-error.js';

export class Shed extends ExpectedError {
  constructor(readonly why: 'queue_full' | 'queue_timeout' | 'client_gone') {
    super(`overloaded: ${why}`);
  }
}

interface Waiter {
  grant: () => void;
  timer: NodeJS.Timeout;
}

export interface FairLimits {
  maxConcurrentRequests: number;
  maxConcurrentPerNamespace: number;
  maxQueuedPerNamespace: number;
  queueTimeoutMs: number;
}

export class FairScheduler {
  private active = 0;
  private readonly activeBy = new Map<string, number>();
  private readonly queues = new Map<string, Waiter[]>();
  /** Namespaces with waiters, in round-robin order. */
  private ring: string[] = [];

  constructor(private limits: FairLimits) {}

  setLimits(l: FairLimits): void {
    this.limits = l;
    this.dispatch();
  }

  get inFlight(): number {
    return this.active;
  }

  /** A slot for `ns` if one is free now and nobody of `ns` waits, else undefined (then acquire()): no promise on the common path. */
  tryAcquire(ns: string): (() => void) | undefined {
    return this.hasRoom(ns) && !this.queues.get(ns)?.length ? this.grantTo(ns) : undefined;
  }

  /** A slot for `ns`, now or after a bounded wait; `client` leaving while queued drops the wait. */
  acquire(ns: string, client?: ClientPresence): Promise<() => void> {
    const now = this.tryAcquire(ns);
    if (now) return Promise.resolve(now);
    const q = this.queues.get(ns) ?? [];
    if (q.length >= this.limits.maxQueuedPerNamespace) return Promise.reject(new Shed('queue_full'));
    return new Promise((resolve, reject) => {
      const leave = (why: Shed['why']): void => {
        if (client) client.onGone = undefined;
        const i = q.indexOf(w);
        if (i >= 0) q.splice(i, 1);
        reject(new Shed(why));
      };
      const w: Waiter = {
        grant: () => {
          if (client) client.onGone = undefined;
          resolve(this.grantTo(ns));
        },
        timer: setTimeout(() => leave('queue_timeout'), this.limits.queueTimeoutMs),
      };
      if (client)
        client.onGone = () => {
          clearTimeout(w.timer);
          leave('client_gone');
        };
      q.push(w);
      this.queues.set(ns, q);
      if (!this.ring.includes(ns)) this.ring.push(ns);
    });
  }

  private hasRoom(ns: string): boolean {
    return this.active < this.limits.maxConcurrentRequests && (this.activeBy.get(ns) ?? 0) < this.limits.maxConcurrentPerNamespace;
  }

  private grantTo(ns: string): () => void {
    this.active++;
    this.activeBy.set(ns, (this.activeBy.get(ns) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.active--;
      const n = (this.activeBy.get(ns) ?? 1) - 1;
      if (n === 0) this.activeBy.delete(ns);
      else this.activeBy.set(ns, n);
      this.dispatch();
    };
  }

  /** Hands free slots out round-robin across namespaces that are waiting. */
  private dispatch(): void {
    let scanned = 0;
    while (this.active < this.limits.maxConcurrentRequests && this.ring.length > 0 && scanned < this.ring.length) {
      const ns = this.ring.shift()!;
      const q = this.queues.get(ns);
      if (!q || q.length === 0) {
        this.queues.delete(ns);
        scanned = 0;
        continue;
      }
      if (!this.hasRoom(ns)) {
        this.ring.push(ns);
        scanned++;
        continue;
      }
      const w = q.shift()!;
      clearTimeout(w.timer);
      if (q.length > 0) this.ring.push(ns); // back of the line: its turn comes again after the others
      else this.queues.delete(ns);
      scanned = 0;
      w.grant();
    }
  }
}
