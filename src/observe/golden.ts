/**
 * Golden metrics per service over a sliding window: request rate, success
 * rate, p50/p99 latency. Kept as one-second buckets of log-spaced latency
 * counts, so memory is fixed whatever the request rate, and a percentile is
 * exact to one bucket (under 10%).
 */

const MIN_MS = 0.01;
const FACTOR = 1.1;
const NBUCKETS = 200; // 0.01 ms .. ~1.9e6 ms

function bucketOf(ms: number): number {
  if (ms <= MIN_MS) return 0;
  return Math.min(NBUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / Math.log(FACTOR)));
}

function bucketUpper(i: number): number {
  return MIN_MS * FACTOR ** i;
}

interface Second {
  sec: number;
  requests: number;
  errors: number;
  lat: Uint32Array;
}

export interface GoldenRow {
  service: string;
  requests: number;
  rps: number;
  successRate: number;
  p50Ms: number;
  p99Ms: number;
}

export class GoldenWindow {
  private readonly services = new Map<string, Second[]>();
  constructor(private readonly keepSeconds = 60) {}

  record(service: string, nowMs: number, latencyMs: number, ok: boolean): void {
    const sec = Math.floor(nowMs / 1000);
    let ring = this.services.get(service);
    if (!ring) {
      ring = [];
      this.services.set(service, ring);
    }
    let cur = ring[ring.length - 1];
    if (!cur || cur.sec !== sec) {
      cur = { sec, requests: 0, errors: 0, lat: new Uint32Array(NBUCKETS) };
      ring.push(cur);
      while (ring.length && ring[0]!.sec <= sec - this.keepSeconds) ring.shift();
    }
    cur.requests++;
    if (!ok) cur.errors++;
    cur.lat[bucketOf(latencyMs)]!++;
  }

  /** One row per service over the last `windowSeconds` complete and current seconds. */
  rows(nowMs: number, windowSeconds: number): GoldenRow[] {
    const now = Math.floor(nowMs / 1000);
    const from = now - windowSeconds + 1;
    const out: GoldenRow[] = [];
    for (const [service, ring] of this.services) {
      const lat = new Uint32Array(NBUCKETS);
      let requests = 0;
      let errors = 0;
      for (const s of ring) {
        if (s.sec < from || s.sec > now) continue;
        requests += s.requests;
        errors += s.errors;
        for (let i = 0; i < NBUCKETS; i++) lat[i]! += s.lat[i]!;
      }
      if (!requests) continue;
      out.push({
        service, requests, rps: requests / windowSeconds, successRate: (requests - errors) / requests,
        p50Ms: quantile(lat, requests, 0.5), p99Ms: quantile(lat, requests, 0.99),
      });
    }
    return out.sort((a, b) => b.rps - a.rps || a.service.localeCompare(b.service));
  }
}

function quantile(lat: Uint32Array, n: number, q: number): number {
  const rank = Math.ceil(q * n);
  let acc = 0;
  for (let i = 0; i < NBUCKETS; i++) {
    acc += lat[i]!;
    if (acc >= rank) return bucketUpper(i);
  }
  return bucketUpper(NBUCKETS - 1);
}
