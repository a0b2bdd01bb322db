/**
 * Local token-bucket rate limiting. Buckets live outside the compiled config,
 * keyed by policy and client, so a config update does not refill them.
 */
import type { TokenBucketSpec } from './config.js';

interface Bucket {
  tokens: number;
  last: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  // Bounded: per-client buckets could otherwise grow with every identity seen.
  private readonly maxBuckets: number;

  constructor(maxBuckets = 100_000, private readonly now: () => number = () => performance.now()) {
    this.maxBuckets = maxBuckets;
  }

  /** Takes one token; false means "limited". */
  take(key: string, spec: TokenBucketSpec): boolean {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxBuckets) this.evictFull(t, spec);
      b = { tokens: spec.capacity, last: t };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(spec.capacity, b.tokens + (t - b.last) * spec.refillPerMs);
    b.last = t;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Drops buckets that have refilled completely: forgetting them changes nothing. */
  private evictFull(t: number, spec: TokenBucketSpec): void {
    for (const [k, b] of this.buckets) if (b.tokens + (t - b.last) * spec.refillPerMs >= spec.capacity) this.buckets.delete(k);
    if (this.buckets.size >= this.maxBuckets) this.buckets.clear();
  }
}
