/**
 * Statistics over repeated runs. Few repeats on a noisy machine: medians
 * rather than means, min–max rather than confidence intervals, and a plain
 * verdict a reader can check by eye.
 */

export type NoiseVerdict = 'stable' | 'noisy' | 'single run';

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  mean: number;
  stdev: number;
  /** Coefficient of variation, stdev / mean (0 when the mean is 0). */
  cv: number;
  verdict: NoiseVerdict;
}

/** Coefficient of variation above which a set of repeats is called noisy. */
export const DEFAULT_NOISY_CV = 0.1;

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Sample standard deviation (n - 1). */
export function stdev(values: readonly number[]): number {
  if (values.length < 2) return 0;
  const m = mean(values);
  return Math.sqrt(values.reduce((a, v) => a + (v - m) ** 2, 0) / (values.length - 1));
}

export function summarize(values: readonly number[], noisyCv = DEFAULT_NOISY_CV): Summary {
  const m = mean(values);
  const sd = stdev(values);
  const cv = m !== 0 && Number.isFinite(m) ? sd / Math.abs(m) : 0;
  return {
    n: values.length,
    median: median(values),
    min: values.length ? Math.min(...values) : NaN,
    max: values.length ? Math.max(...values) : NaN,
    mean: m,
    stdev: sd,
    cv,
    verdict: values.length < 2 ? 'single run' : cv > noisyCv ? 'noisy' : 'stable',
  };
}

export interface Ratio {
  /** median(candidate) / median(baseline) */
  value: number;
  /** The two min–max ranges overlap: the difference is not shown by these runs. */
  withinNoise: boolean;
}

export function ratio(candidate: Summary, baseline: Summary): Ratio {
  const value = baseline.median === 0 ? NaN : candidate.median / baseline.median;
  const withinNoise = candidate.n > 1 && baseline.n > 1 && candidate.min <= baseline.max && baseline.min <= candidate.max;
  return { value, withinNoise };
}

/** Median across runs, point by point, of percentile distributions sampled at the same percentiles. */
export function medianDistribution(runs: ReadonlyArray<ReadonlyArray<readonly [number, number]>>): Array<[number, number]> {
  const first = runs[0];
  if (!first) return [];
  return first.map(([p], i) => [p, median(runs.map((r) => r[i]?.[1] ?? NaN).filter((v) => !Number.isNaN(v)))]);
}
