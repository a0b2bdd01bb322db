/**
 * Turns a scenario's raw runs into per-configuration summaries and ratios
 * against the baseline. Pure: the report writer and tests both use it.
 */
import type { ConfigResult, RunResult, ScenarioResult } from './scenario.js';
import { medianDistribution, ratio, summarize, type Ratio, type Summary } from './stats.js';
import { EbmeshError } from '../src/errors.js';

export const LATENCY_KEYS = ['mean', 'p50', 'p90', 'p99', 'p999', 'max'] as const;
export type LatencyKey = (typeof LATENCY_KEYS)[number];

export interface FootprintSummary {
  cpuPercent: Summary;
  maxRssBytes: Summary;
  maxPssBytes: Summary | null;
}

export interface ConfigSummary {
  name: string;
  description: string;
  baseline: string;
  runs: number;
  rate: Summary;
  latencyUs: Partial<Record<LatencyKey, Summary>>;
  clientCpu: Summary | null;
  footprints: Record<string, FootprintSummary>;
  ratios: {
    rate: Ratio | null;
    latency: Partial<Record<LatencyKey, Ratio>>;
    footprintCpu: Record<string, Ratio>;
  };
  errors: number;
  timeouts: number;
  badStatus: number;
  /** Runs whose achieved rate fell under 95% of the target. */
  belowTarget: number;
  /** Point-wise median of the runs' percentile distributions. */
  distribution: Array<[number, number]> | null;
  /** Any headline figure (rate, p50, p99) varied more than the noise threshold. */
  noisy: boolean;
}

function numbers(runs: readonly RunResult[], pick: (r: RunResult) => number | null): number[] | null {
  const v = runs.map(pick);
  return v.every((x): x is number => x !== null && Number.isFinite(x)) ? v : null;
}

function summarizeConfig(c: ConfigResult, baseline: string): Omit<ConfigSummary, 'ratios'> {
  const latencyUs: Partial<Record<LatencyKey, Summary>> = {};
  for (const k of LATENCY_KEYS) {
    const v = numbers(c.runs, (r) => r.latencyUs[k]);
    if (v) latencyUs[k] = summarize(v);
  }
  const labels = new Set(c.runs.flatMap((r) => Object.keys(r.footprints)));
  const footprints: Record<string, FootprintSummary> = {};
  for (const label of labels) {
    const runs = c.runs.filter((r) => r.footprints[label]);
    const fp = (r: RunResult) => r.footprints[label]!;
    const pss = numbers(runs, (r) => fp(r).maxPssBytes);
    footprints[label] = {
      cpuPercent: summarize(runs.map((r) => fp(r).cpuPercent)),
      maxRssBytes: summarize(runs.map((r) => fp(r).maxRssBytes)),
      maxPssBytes: pss ? summarize(pss) : null,
    };
  }
  const cpu = numbers(c.runs, (r) => r.clientCpu);
  const dists = c.runs.map((r) => r.distribution).filter((d): d is Array<[number, number]> => d !== null);
  const rate = summarize(c.runs.map((r) => r.rate));
  const noisy = [rate, latencyUs.p50, latencyUs.p99].some((s) => s?.verdict === 'noisy');
  return {
    name: c.name,
    description: c.description,
    baseline,
    runs: c.runs.length,
    rate,
    latencyUs,
    clientCpu: cpu ? summarize(cpu) : null,
    footprints,
    errors: c.runs.reduce((a, r) => a + r.errors, 0),
    timeouts: c.runs.reduce((a, r) => a + r.timeouts, 0),
    badStatus: c.runs.reduce((a, r) => a + r.badStatus, 0),
    belowTarget: c.runs.filter((r) => r.belowTarget).length,
    distribution: dists.length === c.runs.length && dists.length > 0 ? medianDistribution(dists) : null,
    noisy,
  };
}

function checkTables(scenario: string, result: ScenarioResult): void {
  for (const t of result.tables ?? []) {
    const bad = t.rows.findIndex((r) => r.length !== t.header.length);
    if (bad >= 0) {
      throw new EbmeshError('EBMESH_BENCH_RESULT_INVALID', `row ${bad + 1} of table "${t.title}" has ${t.rows[bad]!.length} cells, its header ${t.header.length}`, { where: `scenario ${scenario}` });
    }
  }
}

export function analyzeScenario(scenario: string, result: ScenarioResult): ConfigSummary[] {
  if (result.configs.length === 0 && !result.tables?.length) {
    throw new EbmeshError('EBMESH_BENCH_RESULT_INVALID', 'no configuration was measured and no table was given', { where: `scenario ${scenario}` });
  }
  const names = new Set(result.configs.map((c) => c.name));
  if (names.size !== result.configs.length) {
    throw new EbmeshError('EBMESH_BENCH_RESULT_INVALID', 'configuration names are not unique', { where: `scenario ${scenario}` });
  }
  checkTables(scenario, result);
  // A scenario that counts no requests (convergence) reports only tables.
  if (result.configs.length === 0) return [];
  const bases = result.configs.map((c) => c.baseline ?? result.baseline);
  for (const b of bases) {
    if (!names.has(b)) {
      throw new EbmeshError('EBMESH_BENCH_RESULT_INVALID', `baseline "${b}" is not one of the measured configurations`, {
        where: `scenario ${scenario}`,
        hint: 'every figure is a ratio against a baseline measured in the same run',
      });
    }
  }
  for (const c of result.configs) {
    if (c.runs.length === 0) {
      throw new EbmeshError('EBMESH_BENCH_RESULT_INVALID', `configuration "${c.name}" has no runs`, { where: `scenario ${scenario}` });
    }
  }
  const partial = result.configs.map((c, i) => summarizeConfig(c, bases[i]!));
  const byName = new Map(partial.map((p) => [p.name, p]));
  return partial.map((p) => {
    const b = byName.get(p.baseline)!;
    const latency: Partial<Record<LatencyKey, Ratio>> = {};
    for (const k of LATENCY_KEYS) {
      const a = p.latencyUs[k];
      const z = b.latencyUs[k];
      if (a && z) latency[k] = ratio(a, z);
    }
    const footprintCpu: Record<string, Ratio> = {};
    for (const [label, f] of Object.entries(p.footprints)) {
      const z = b.footprints[label];
      if (z) footprintCpu[label] = ratio(f.cpuPercent, z.cpuPercent);
    }
    return { ...p, ratios: { rate: ratio(p.rate, b.rate), latency, footprintCpu } };
  });
}

/**
 * Two configurations measured in the same repeats, compared repeat by
 * repeat: on a noisy machine a tail percentile moves more between repeats
 * than between configurations, and medians of separate runs can hide that.
 * Returns one line for the report's notes, or undefined when the two do not
 * have the same number of runs.
 */
export function pairedComparison(configs: readonly ConfigResult[], a: string, b: string, key: LatencyKey): string | undefined {
  const ra = configs.find((c) => c.name === a)?.runs;
  const rb = configs.find((c) => c.name === b)?.runs;
  if (!ra || !rb || ra.length !== rb.length || ra.length === 0) return undefined;
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < ra.length; i++) {
    const x = ra[i]!.latencyUs[key];
    const y = rb[i]!.latencyUs[key];
    if (x === null || y === null) return undefined;
    pairs.push([x, y]);
  }
  const ms = (us: number): string => (us / 1000).toFixed(us < 10_000 ? 2 : 1);
  const lower = pairs.filter(([x, y]) => x < y).length;
  return `${key}, "${a}" vs "${b}", repeat by repeat (each pair in the same repeat): ${pairs.map(([x, y]) => `${ms(x)} vs ${ms(y)} ms`).join('; ')}: "${a}" lower in ${lower} of ${pairs.length}.`;
}
