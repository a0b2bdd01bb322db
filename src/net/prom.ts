/**
 * A small Prometheus text exposition (format 0.0.4) writer.
 *
 * Written here rather than taken from prom-client: ebmesh needs counters,
 * gauges and fixed-bucket histograms with labels, nothing of the default
 * process collectors' global registry, and the whole format fits in a page.
 */

export type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

// The same label objects come back for every event of a series: remember their text.
const labelTextCache = new WeakMap<Labels, string>();

function labelText(l: Labels): string {
  const hit = labelTextCache.get(l);
  if (hit !== undefined) return hit;
  const t = computeLabelText(l);
  labelTextCache.set(l, t);
  return t;
}

function computeLabelText(l: Labels): string {
  const keys = Object.keys(l).filter((k) => l[k] !== undefined && l[k] !== '');
  if (!keys.length) return '';
  return `{${keys.map((k) => `${k}="${escapeLabel(l[k]!)}"`).join(',')}}`;
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

abstract class Family<S> {
  protected readonly series = new Map<string, { labels: Labels; s: S }>();
  constructor(readonly name: string, readonly help: string, readonly type: string) {}

  protected get(labels: Labels, make: () => S): S {
    const key = labelText(labels);
    let e = this.series.get(key);
    if (!e) {
      e = { labels, s: make() };
      this.series.set(key, e);
    }
    return e.s;
  }

  header(): string[] {
    return [`# HELP ${this.name} ${this.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${this.name} ${this.type}`];
  }

  abstract lines(): string[];
}

export class Counter extends Family<{ v: number }> {
  constructor(name: string, help: string) {
    if (!name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
    super(name, help, 'counter');
  }
  inc(labels: Labels = {}, by = 1): void {
    this.handle(labels).v += by;
  }
  /** One series' cell, for a caller that counts it often: `handle(l).v += n` without a lookup per event. */
  handle(labels: Labels): { v: number } {
    return this.get(labels, () => ({ v: 0 }));
  }
  /** For counters kept elsewhere (the kernel's): the current total. */
  set(labels: Labels, v: number): void {
    this.get(labels, () => ({ v: 0 })).v = v;
  }
  value(labels: Labels = {}): number {
    return this.series.get(labelText(labels))?.s.v ?? 0;
  }
  lines(): string[] {
    return [...this.series.values()].map(({ labels, s }) => `${this.name}${labelText(labels)} ${num(s.v)}`);
  }
}

export class Gauge extends Family<{ v: number }> {
  constructor(name: string, help: string) {
    super(name, help, 'gauge');
  }
  set(labels: Labels, v: number): void {
    this.get(labels, () => ({ v: 0 })).v = v;
  }
  reset(): void {
    this.series.clear();
  }
  lines(): string[] {
    return [...this.series.values()].map(({ labels, s }) => `${this.name}${labelText(labels)} ${num(s.v)}`);
  }
}

export interface HistogramSeries {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends Family<HistogramSeries> {
  constructor(name: string, help: string, readonly buckets: readonly number[]) {
    super(name, help, 'histogram');
  }
  observe(labels: Labels, v: number): void {
    this.observeInto(this.handle(labels), v);
  }
  /** One series, for a caller that observes it often (with observeInto). */
  handle(labels: Labels): HistogramSeries {
    return this.get(labels, () => ({ counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 }));
  }
  observeInto(s: HistogramSeries, v: number): void {
    // Non-cumulative here; cumulated when written.
    let i = 0;
    while (i < this.buckets.length && v > this.buckets[i]!) i++;
    if (i < this.buckets.length) s.counts[i]!++;
    s.sum += v;
    s.count++;
  }
  lines(): string[] {
    const out: string[] = [];
    for (const { labels, s } of this.series.values()) {
      let acc = 0;
      this.buckets.forEach((b, i) => {
        acc += s.counts[i]!;
        out.push(`${this.name}_bucket${labelText({ ...labels, le: num(b) })} ${acc}`);
      });
      out.push(`${this.name}_bucket${labelText({ ...labels, le: '+Inf' })} ${s.count}`);
      out.push(`${this.name}_sum${labelText(labels)} ${num(s.sum)}`);
      out.push(`${this.name}_count${labelText(labels)} ${s.count}`);
    }
    return out;
  }
}

export class Registry {
  private readonly families: Family<unknown>[] = [];
  register<F extends Family<any>>(f: F): F {
    this.families.push(f as Family<unknown>);
    return f;
  }
  expose(): string {
    const out: string[] = [];
    for (const f of this.families) out.push(...f.header(), ...f.lines());
    return out.join('\n') + '\n';
  }
}

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
