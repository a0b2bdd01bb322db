/**
 * Runs scenarios one after another (never in parallel: they would measure
 * each other), shows progress on stderr, and writes the report into
 * <outDir>/<timestamp>/.
 */
import os from 'node:os';
import path from 'node:path';
import { analyzeScenario } from './analysis.js';
import { describeMachine, type ToolProbe, DEFAULT_TOOL_PROBES } from './machine.js';
import { writeReport, type BenchReport, type ScenarioReport } from './report.js';
import type { Scenario } from './scenario.js';
import { DEFAULT_NOISY_CV } from './stats.js';
import { EbmeshError, isEbmeshError } from '../src/errors.js';

export interface BenchOptions {
  quick: boolean;
  /** Parent directory; the report goes into a fresh timestamped folder in it. */
  outDir: string;
  /** Also print report.json to stdout (for `-o json`). */
  json: boolean;
  /** Defaults to 1 in quick mode (it proves the machinery in under 3 minutes), 5 otherwise. */
  repeats?: number;
  noisyCv?: number;
  /** Where progress lines go; defaults to stderr. */
  progress?: (line: string) => void;
  /** Tools whose versions go into the report. */
  tools?: ToolProbe[];
  signal?: AbortSignal;
}

export interface BenchOutcome {
  dir: string;
  files: string[];
  report: BenchReport;
  /** True when every scenario completed. */
  ok: boolean;
}

function stamp(d: Date): string {
  return d.toISOString().replace(/:/g, '-');
}

export async function runBench(scenarios: readonly Scenario[], opts: BenchOptions): Promise<BenchOutcome> {
  const names = new Set<string>();
  for (const s of scenarios) {
    if (names.has(s.name)) throw new EbmeshError('EBMESH_BENCH_DUPLICATE', `scenario "${s.name}" is listed twice`);
    names.add(s.name);
  }
  const started = new Date();
  const t0 = Date.now();
  const out = opts.progress ?? ((l: string) => process.stderr.write(`${l}\n`));
  const log = (msg: string): void => out(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${msg}`);
  const repeats = opts.repeats ?? (opts.quick ? 1 : 5);
  const noisyCv = opts.noisyCv ?? DEFAULT_NOISY_CV;
  const machine = describeMachine(opts.tools ?? DEFAULT_TOOL_PROBES);
  if (machine.loadAverage[0]! > machine.cores * 0.5) {
    log(`warning: load average ${machine.loadAverage[0]} on ${machine.cores} cores; figures will be noisy`);
  }

  const reports: ScenarioReport[] = [];
  for (const [i, s] of scenarios.entries()) {
    const prefix = `[${i + 1}/${scenarios.length} ${s.name}]`;
    log(`${prefix} ${s.describe}`);
    const ts = Date.now();
    try {
      const result = await s.run({
        quick: opts.quick,
        repeats,
        progress: (m) => log(`${prefix} ${m}`),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      const summaries = analyzeScenario(s.name, result);
      reports.push({ name: s.name, describe: s.describe, status: 'ok', error: null, durationS: (Date.now() - ts) / 1000, result, summaries, figures: [] });
      log(`${prefix} done`);
    } catch (e) {
      // One broken scenario must not lose the others' measurements.
      const err = e instanceof Error ? e : new Error(String(e));
      reports.push({
        name: s.name,
        describe: s.describe,
        status: 'failed',
        error: { code: isEbmeshError(err) ? err.code : null, message: err.message, hint: isEbmeshError(err) ? err.hint ?? null : null },
        durationS: (Date.now() - ts) / 1000,
        result: null,
        summaries: [],
        figures: [],
      });
      log(`${prefix} FAILED: ${err.message}`);
    }
  }

  const report: BenchReport = {
    tool: 'ebmesh bench',
    formatVersion: 1,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    invocation: process.argv.slice(1),
    options: { quick: opts.quick, repeats, noisyCv },
    machine,
    loadAverageAtEnd: os.loadavg(),
    scenarios: reports,
  };
  const dir = path.join(opts.outDir, stamp(started));
  const files = await writeReport(dir, report);
  log(`report: ${path.join(dir, 'report.md')}`);
  if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  return { dir, files, report, ok: reports.every((r) => r.status === 'ok') };
}
