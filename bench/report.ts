/**
 * The report of one `ebmesh bench` run: report.json (everything, raw runs
 * included), report.md (tables a person reads) and one pair of SVG plots per
 * scenario. Every comparison is against a baseline measured in the same run.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ConfigSummary, LatencyKey } from './analysis.js';
import type { MachineInfo } from './machine.js';
import type { ScenarioResult } from './scenario.js';
import type { Ratio, Summary } from './stats.js';
import { barPlot, latencyPercentilePlot } from './svg.js';

export interface ScenarioReport {
  name: string;
  describe: string;
  status: 'ok' | 'failed';
  error: { code: string | null; message: string; hint: string | null } | null;
  durationS: number;
  result: ScenarioResult | null;
  summaries: ConfigSummary[];
  /** File names of the plots, relative to the report directory. */
  figures: string[];
}

export interface BenchReport {
  tool: 'ebmesh bench';
  formatVersion: 1;
  startedAt: string;
  finishedAt: string;
  /** How this run was started, to reproduce it. */
  invocation: string[];
  options: { quick: boolean; repeats: number; noisyCv: number };
  machine: MachineInfo;
  /** 1, 5 and 15 minute load averages when the run finished. */
  loadAverageAtEnd: number[];
  scenarios: ScenarioReport[];
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function num(v: number, digits = 1): string {
  if (!Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(digits);
}

function ratioText(r: Ratio | null | undefined, isBaseline: boolean): string {
  if (isBaseline) return 'base';
  if (!r || !Number.isFinite(r.value)) return '–';
  return `${r.withinNoise ? '≈' : ''}×${r.value.toFixed(2)}`;
}

function fig(s: Summary | undefined | null, r: Ratio | null | undefined, isBaseline: boolean, digits = 1): string {
  if (!s) return '–';
  const spread = s.n > 1 ? ` [${num(s.min, digits)}–${num(s.max, digits)}]` : '';
  return `${num(s.median, digits)}${spread} (${ratioText(r, isBaseline)})`;
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}

function mainTable(sums: readonly ConfigSummary[]): string[] {
  const lat = (c: ConfigSummary, k: LatencyKey): string => fig(c.latencyUs[k], c.ratios.latency[k], c.name === c.baseline);
  const rows = [
    '| # | configuration | vs | runs | rate req/s | mean µs | p50 µs | p90 µs | p99 µs | p99.9 µs | client CPU | errors / timeouts / non-2xx,3xx | noise |',
    '|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  sums.forEach((c, i) => {
    const base = c.name === c.baseline;
    const flags = [
      c.noisy ? 'noisy' : 'stable',
      c.belowTarget ? `${c.belowTarget} run(s) below target` : '',
      c.errors + c.timeouts + c.badStatus > 0 ? '**failures**' : '',
    ].filter(Boolean).join(', ');
    rows.push(`| ${i + 1} | ${cell(c.name)} | ${base ? '—' : cell(c.baseline)} | ${c.runs} | ${fig(c.rate, c.ratios.rate, base, 0)} | ` +
      `${lat(c, 'mean')} | ${lat(c, 'p50')} | ${lat(c, 'p90')} | ${lat(c, 'p99')} | ${lat(c, 'p999')} | ` +
      `${c.clientCpu ? `${(c.clientCpu.median * 100).toFixed(0)}%` : '–'} | ${c.errors} / ${c.timeouts} / ${c.badStatus} | ${flags} |`);
  });
  return rows;
}

function footprintTable(sums: readonly ConfigSummary[]): string[] {
  const rows: string[] = [];
  for (const c of sums) {
    for (const [label, f] of Object.entries(c.footprints)) {
      rows.push(`| ${cell(c.name)} | ${cell(label)} | ${fig(f.cpuPercent, c.ratios.footprintCpu[label], c.name === c.baseline)} | ` +
        `${f.maxPssBytes ? mib(f.maxPssBytes.median) : '–'} | ${mib(f.maxRssBytes.median)} |`);
    }
  }
  if (rows.length === 0) return [];
  return ['| configuration | processes | CPU % of one core | max PSS MiB | max RSS MiB |', '|---|---|--:|--:|--:|', ...rows];
}

function commandsOf(s: ScenarioReport): string[] {
  const out: string[] = [];
  for (const c of s.result?.configs ?? []) {
    const cmds = [...new Set(c.runs.map((r) => r.command.join(' ')))];
    out.push(`# ${c.name} (${c.runs.length} run${c.runs.length === 1 ? '' : 's'})`);
    out.push(...cmds);
  }
  return out;
}

export function renderMarkdown(r: BenchReport): string {
  const m = r.machine;
  const L: string[] = [];
  L.push(`# ebmesh bench — ${r.startedAt}`, '');
  if (r.options.quick) L.push('> **Quick mode**: short runs at small loads. They prove the machinery, not the figures.', '');
  L.push('## Machine', '');
  L.push('| | |', '|---|---|');
  L.push(`| CPU | ${cell(m.cpuModel)} × ${m.cores} |`);
  L.push(`| memory | ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB |`);
  L.push(`| kernel | ${cell(m.kernel)} (${cell(m.kernelVersion)}) |`);
  L.push(`| OS | ${cell(m.os)} |`);
  L.push(`| Node.js | ${m.node} |`);
  L.push(`| load average at start | ${m.loadAverage.join(' ')} |`);
  L.push(`| load average at end | ${r.loadAverageAtEnd.map((v) => v.toFixed(2)).join(' ')} |`);
  L.push(`| CPU governor | ${m.cpuGovernor ?? 'n/a'} |`);
  for (const [t, v] of Object.entries(m.tools)) L.push(`| ${cell(t)} | ${cell(v ?? 'not installed')} |`);
  L.push('');
  L.push('## How to read this', '');
  L.push(`Each figure is the median over ${r.options.repeats} repeat(s), then [min–max], then its ratio to the configuration in the "vs" column, measured in this same run. ` +
    '`≈` marks a ratio whose min–max range overlaps the baseline\'s: these runs do not show a difference. ' +
    `A configuration is "noisy" when the coefficient of variation of its rate, p50 or p99 across repeats exceeds ${(r.options.noisyCv * 100).toFixed(0)}%. ` +
    'Latency is measured from each request\'s scheduled send time (open loop), so queueing behind a slow response counts. ' +
    '"client CPU" is the load generator\'s own CPU, in percent of one core.', '');
  L.push(`Invocation: \`${r.invocation.join(' ')}\``, '');

  for (const s of r.scenarios) {
    L.push(`## ${s.name}`, '', s.describe, '');
    if (s.status === 'failed') {
      L.push(`**Failed** after ${s.durationS.toFixed(1)} s: ${s.error?.code ? `\`${s.error.code}\` ` : ''}${s.error?.message ?? ''}`);
      if (s.error?.hint) L.push('', `Hint: ${s.error.hint}`);
      L.push('');
      continue;
    }
    if (s.summaries.length) {
      L.push(`Baseline: **${cell(s.result?.baseline ?? '')}**. Took ${s.durationS.toFixed(1)} s.`, '');
      L.push(...mainTable(s.summaries), '');
    } else {
      L.push(`Took ${s.durationS.toFixed(1)} s.`, '');
    }
    const fp = footprintTable(s.summaries);
    if (fp.length) L.push('Footprint of the processes under test (sampled from /proc while the load ran):', '', ...fp, '');
    for (const t of s.result?.tables ?? []) {
      L.push(`${t.title}:`, '', `| ${t.header.map(cell).join(' | ')} |`, `|${t.header.map((_, i) => (i === 0 ? '---' : '--:')).join('|')}|`);
      for (const row of t.rows) L.push(`| ${row.map(cell).join(' | ')} |`);
      L.push('');
    }
    for (const f of s.figures) L.push(`![${f}](${f})`, '');
    L.push('### Setup and exact commands', '', '```');
    L.push(...(s.result?.setup ?? []), '', ...commandsOf(s), '```', '');
    if (s.result?.notes.length) {
      L.push('### Notes', '');
      for (const n of s.result.notes) L.push(`- ${n}`);
      L.push('');
    }
  }
  L.push(`Finished ${r.finishedAt}.`, '');
  return L.join('\n');
}

export function scenarioFigures(s: ScenarioReport): Map<string, string> {
  const files = new Map<string, string>();
  if (s.status !== 'ok' || s.summaries.length === 0) return files;
  const slug = s.name.replace(/[^a-zA-Z0-9_-]+/g, '-');
  const series = s.summaries
    .filter((c) => c.distribution)
    .map((c) => ({ name: c.name, points: c.distribution! }));
  if (series.length) files.set(`${slug}-latency.svg`, latencyPercentilePlot(`${s.name}: latency by percentile (median of runs)`, series));
  files.set(`${slug}-throughput.svg`, barPlot(`${s.name}: achieved rate (median, min–max)`, 'requests per second', s.summaries.map((c) => ({
    name: c.name,
    value: c.rate.median,
    low: c.rate.min,
    high: c.rate.max,
    label: c.name === c.baseline ? 'base' : `${ratioText(c.ratios.rate, false)}${c.baseline === s.result?.baseline ? '' : ` vs ${1 + s.summaries.findIndex((x) => x.name === c.baseline)}`}`,
  }))));
  for (const b of s.result?.bars ?? []) files.set(`${slug}-${b.name.replace(/[^a-zA-Z0-9_-]+/g, '-')}.svg`, barPlot(b.title, b.unit, b.bars));
  return files;
}

/** Writes report.json, report.md and the plots into dir; returns the paths written. */
export async function writeReport(dir: string, report: BenchReport): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const s of report.scenarios) {
    const figs = scenarioFigures(s);
    s.figures = [...figs.keys()];
    for (const [name, svg] of figs) {
      const p = path.join(dir, name);
      await writeFile(p, svg);
      written.push(p);
    }
  }
  const md = path.join(dir, 'report.md');
  await writeFile(md, renderMarkdown(report));
  const json = path.join(dir, 'report.json');
  await writeFile(json, `${JSON.stringify(report, null, 2)}\n`);
  written.push(md, json);
  return written;
}
