/**
 * The contract between a benchmark scenario and the runner. A scenario
 * measures; the runner summarises, compares against the baseline and writes
 * the report, so every scenario's numbers are read the same way.
 */
import type { Footprint } from './footprint.js';
import type { LoadResult } from './loadgen.js';
import type { Bar } from './svg.js';

export interface ScenarioContext {
  /** Small loads and short runs: proves the scenario works, figures mean little. */
  quick: boolean;
  /** How many times each configuration should be measured. */
  repeats: number;
  progress(msg: string): void;
  signal?: AbortSignal;
}

/** One measurement of one configuration: what ran and what it gave. */
export interface RunResult {
  /** The tool that produced the numbers: 'ebmesh-loadgen', 'wrk', … */
  tool: string;
  command: string[];
  /** Requests per second completed during the measured window. */
  rate: number;
  targetRate: number | null;
  errors: number;
  timeouts: number;
  /** Responses outside 200–399: the server answered, but not with what was measured. */
  badStatus: number;
  /** Microseconds; null where the tool does not report that figure. */
  latencyUs: {
    mean: number | null;
    p50: number | null;
    p90: number | null;
    p99: number | null;
    p999: number | null;
    max: number | null;
  };
  /** [percentile, µs] pairs for the distribution plot, when the tool gives them. */
  distribution: Array<[number, number]> | null;
  belowTarget: boolean;
  /** CPU of the load generator itself, in cores (1 = one full core). */
  clientCpu: number | null;
  /** Footprints of the processes under test, by label ('server', 'agent', 'proxy', …). */
  footprints: Record<string, Footprint>;
}

export interface ConfigResult {
  /** Short label shown in tables and plots, unique within the scenario. */
  name: string;
  description: string;
  /** The configuration this one is compared with; defaults to the scenario's baseline. */
  baseline?: string;
  runs: RunResult[];
}

/** A table of the scenario's own headline figures, derived from its runs (e.g. footprints per workload). */
export interface ScenarioTable {
  title: string;
  header: string[];
  /** Each row as many cells as the header. */
  rows: string[][];
}

export interface ScenarioResult {
  /** Name of the configuration every other one is compared with. */
  baseline: string;
  configs: ConfigResult[];
  /** Exact commands and settings, besides each run's own command line. */
  setup: string[];
  notes: string[];
  tables?: ScenarioTable[];
  /** Bar plots of the scenario's own figures; `name` becomes part of the SVG's file name. */
  bars?: Array<{ name: string; title: string; unit: string; bars: Bar[] }>;
}

export interface Scenario {
  name: string;
  describe: string;
  /** Runs only when named (`ebmesh bench NAME`), not in a run of every scenario: it needs what a default run does not bring (the Kubernetes lab cluster). */
  onlyByName?: true;
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}

export function badStatusCount(status: Record<string, number>): number {
  return Object.entries(status).reduce((a, [code, n]) => {
    const c = Number(code);
    return Number.isInteger(c) && c >= 200 && c < 400 ? a : a + n;
  }, 0);
}

/** A run with no request figures, for tools that measure something else (or nothing but footprints). */
export function emptyRun(tool: string, command: string[], footprints: Record<string, Footprint> = {}): RunResult {
  return {
    tool, command, rate: 0, targetRate: null, errors: 0, timeouts: 0, badStatus: 0,
    latencyUs: { mean: null, p50: null, p90: null, p99: null, p999: null, max: null },
    distribution: null, belowTarget: false, clientCpu: null, footprints,
  };
}

/** Converts loadgen output into the generic run record. */
export function runFromLoad(r: LoadResult, footprints: Record<string, Footprint> = {}): RunResult {
  return {
    tool: 'ebmesh-loadgen',
    command: r.command,
    rate: r.achievedRate,
    targetRate: r.mode === 'open' ? r.targetRate : null,
    errors: r.requests.errors,
    timeouts: r.requests.timeouts,
    badStatus: badStatusCount(r.status),
    latencyUs: {
      mean: r.latencyUs.mean,
      p50: r.latencyUs.p50,
      p90: r.latencyUs.p90,
      p99: r.latencyUs.p99,
      p999: r.latencyUs.p999,
      max: r.latencyUs.max,
    },
    distribution: r.distribution,
    belowTarget: r.belowTarget,
    clientCpu: r.loadgenCpu,
    footprints,
  };
}

/**
 * The configurations of one repeat, starting `repeat` further along each
 * time: over the repeats every configuration runs in every position, so
 * neither a slow spell of the machine nor what ran just before (a proxy
 * restart, a warm cache) always lands on the same one.
 */
export function rotation<T>(items: readonly T[], repeat: number): T[] {
  const n = items.length;
  return Array.from({ length: n }, (_, k) => items[(repeat + k) % n]!);
}

/** Runs grouped by configuration, in the order configurations first ran. */
export class ConfigRuns {
  private readonly byName = new Map<string, ConfigResult>();

  add(name: string, description: string, r: RunResult, baseline?: string): void {
    const c = this.byName.get(name) ?? { name, description, runs: [], ...(baseline ? { baseline } : {}) };
    c.runs.push(r);
    this.byName.set(name, c);
  }

  results(): ConfigResult[] {
    return [...this.byName.values()];
  }
}
