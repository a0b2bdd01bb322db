/**
 * Outlier detection: an endpoint that fails N times in a row (5xx or a
 * connect failure) is ejected for baseEjectionTime × 2^(ejections-1), capped
 * at maxEjectionTime, then returns on its own. Successes reset the streak.
 */
import { channels } from './events.js';

interface EndpointHealth {
  streak: number;
  ejections: number;
  ejectedUntil: number;
}

export interface OutlierSpec {
  consecutiveErrors: number;
  baseMs: number;
  maxMs: number;
  maxPercent: number;
}

export class OutlierDetector {
  private readonly health = new Map<string, EndpointHealth>();
  constructor(private readonly now: () => number = () => Date.now()) {}

  private get(key: string): EndpointHealth {
    let h = this.health.get(key);
    if (!h) this.health.set(key, (h = { streak: 0, ejections: 0, ejectedUntil: 0 }));
    return h;
  }

  isEjected(key: string): boolean {
    const h = this.health.get(key);
    return h !== undefined && h.ejectedUntil > this.now();
  }

  /** Records one result. `peers` are the endpoint keys of the same service (for maxPercent). */
  record(service: string, key: string, ok: boolean, spec: OutlierSpec, peers: readonly string[]): void {
    const h = this.get(key);
    if (ok) {
      h.streak = 0;
      return;
    }
    h.streak++;
    if (h.streak < spec.consecutiveErrors || this.isEjected(key)) return;
    const ejected = peers.filter((p) => p !== key && this.isEjected(p)).length + 1;
    if ((ejected / Math.max(1, peers.length)) * 100 > spec.maxPercent) return;
    h.ejections++;
    const ms = Math.min(spec.maxMs, spec.baseMs * 2 ** (h.ejections - 1));
    h.ejectedUntil = this.now() + ms;
    h.streak = 0;
    if (channels.ejected.hasSubscribers) channels.ejected.publish({ service, endpoint: key, forMs: ms, ejections: h.ejections });
  }
}
