/**
 * Circuit breaking per backend service (Envoy's thresholds): at most
 * maxRequests in flight (maxConnections for HTTP/1, where one request holds
 * one connection), at most maxPendingRequests waiting; beyond that, 503 at
 * once instead of piling work on a struggling backend.
 */
import { ExpectedError } from './expected-error.js';

export class BreakerOpen extends ExpectedError {
  constructor(readonly service: string) {
    super(`circuit breaker open for ${service}`);
  }
}

interface Waiter {
  resolve: () => void;
}

interface Gate {
  active: number;
  waiting: Waiter[];
}

export interface BreakerLimits {
  maxConnections: number;
  maxPendingRequests: number;
  maxRequests: number;
}

export class CircuitBreakers {
  private readonly gates = new Map<string, Gate>();

  /** Resolves with a release function, or rejects with BreakerOpen. */
  async acquire(service: string, limits: BreakerLimits, http1: boolean): Promise<() => void> {
    const cap = http1 ? Math.min(limits.maxConnections, limits.maxRequests) : limits.maxRequests;
    let g = this.gates.get(service);
    if (!g) this.gates.set(service, (g = { active: 0, waiting: [] }));
    const gate = g;
    if (gate.active < cap) {
      gate.active++;
    } else {
      if (gate.waiting.length >= limits.maxPendingRequests) throw new BreakerOpen(service);
      await new Promise<void>((resolve) => gate.waiting.push({ resolve }));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = gate.waiting.shift();
      if (next) next.resolve(); // the slot passes straight to the next waiter
      else gate.active--;
    };
  }
}
