/**
 * The shape of report.json, as a schema: tests check written reports
 * against it, and scripts that read reports can validate them before use.
 * It follows the types in report.ts, scenario.ts and analysis.ts; a change
 * there that this schema does not follow fails the report tests.
 */
import { z } from 'zod';

const num = z.number();
const finite = z.number().finite();
const nullableNum = z.number().nullable();

const footprint = z.object({
  cpuPercent: finite.nonnegative(),
  cpuSeconds: finite.nonnegative(),
  wallSeconds: finite.nonnegative(),
  maxRssBytes: finite.nonnegative(),
  maxPssBytes: finite.nonnegative().nullable(),
  maxProcesses: z.number().int().nonnegative(),
  samples: z.number().int().positive(),
}).strict();

const latency = z.object({ mean: nullableNum, p50: nullableNum, p90: nullableNum, p99: nullableNum, p999: nullableNum, max: nullableNum }).strict();
const distribution = z.array(z.tuple([num.min(0).max(100), num.nonnegative()]));

const run = z.object({
  tool: z.string().min(1),
  command: z.array(z.string()).min(1),
  rate: finite.nonnegative(),
  targetRate: nullableNum,
  errors: z.number().int().nonnegative(),
  timeouts: z.number().int().nonnegative(),
  badStatus: z.number().int().nonnegative(),
  latencyUs: latency,
  distribution: distribution.nullable(),
  belowTarget: z.boolean(),
  clientCpu: nullableNum,
  footprints: z.record(z.string(), footprint),
}).strict();

const bar = z.object({ name: z.string(), value: finite, low: finite.optional(), high: finite.optional(), label: z.string().optional() }).strict();

const result = z.object({
  /** Empty only when no configuration was measured (a scenario reporting tables alone). */
  baseline: z.string(),
  configs: z.array(z.object({ name: z.string().min(1), description: z.string(), baseline: z.string().optional(), runs: z.array(run).min(1) }).strict()),
  setup: z.array(z.string()),
  notes: z.array(z.string()),
  tables: z.array(z.object({ title: z.string(), header: z.array(z.string()).min(1), rows: z.array(z.array(z.string())) }).strict()).optional(),
  bars: z.array(z.object({ name: z.string().min(1), title: z.string(), unit: z.string(), bars: z.array(bar) }).strict()).optional(),
}).strict();

// Summaries: NaN (a ratio to 0) serialises as null.
const jsonNum = z.number().nullable();
const summary = z.object({
  n: z.number().int().positive(), median: jsonNum, min: jsonNum, max: jsonNum, mean: jsonNum, stdev: jsonNum, cv: jsonNum,
  verdict: z.enum(['stable', 'noisy', 'single run']),
}).strict();
const ratio = z.object({ value: jsonNum, withinNoise: z.boolean() }).strict();

const configSummary = z.object({
  name: z.string(),
  description: z.string(),
  baseline: z.string(),
  runs: z.number().int().positive(),
  rate: summary,
  latencyUs: z.record(z.string(), summary),
  clientCpu: summary.nullable(),
  footprints: z.record(z.string(), z.object({ cpuPercent: summary, maxRssBytes: summary, maxPssBytes: summary.nullable() }).strict()),
  ratios: z.object({ rate: ratio.nullable(), latency: z.record(z.string(), ratio), footprintCpu: z.record(z.string(), ratio) }).strict(),
  errors: z.number().int().nonnegative(),
  timeouts: z.number().int().nonnegative(),
  badStatus: z.number().int().nonnegative(),
  belowTarget: z.number().int().nonnegative(),
  distribution: distribution.nullable(),
  noisy: z.boolean(),
}).strict();

const scenario = z.object({
  name: z.string().min(1),
  describe: z.string(),
  status: z.enum(['ok', 'failed']),
  error: z.object({ code: z.string().nullable(), message: z.string(), hint: z.string().nullable() }).strict().nullable(),
  durationS: finite.nonnegative(),
  result: result.nullable(),
  summaries: z.array(configSummary),
  figures: z.array(z.string().regex(/^[\w.-]+\.svg$/)),
}).strict();

export const benchReportSchema = z.object({
  tool: z.literal('ebmesh bench'),
  formatVersion: z.literal(1),
  startedAt: z.string().datetime(),
  finishedAt: z.string().datetime(),
  invocation: z.array(z.string()),
  options: z.object({ quick: z.boolean(), repeats: z.number().int().positive(), noisyCv: finite.positive() }).strict(),
  machine: z.object({
    hostname: z.string(), cores: z.number().int().positive(), cpuModel: z.string(), memoryBytes: finite.positive(),
    kernel: z.string(), kernelVersion: z.string(), os: z.string(), node: z.string(),
    loadAverage: z.array(finite.nonnegative()).length(3), cpuGovernor: z.string().nullable(), tools: z.record(z.string(), z.string().nullable()),
  }).strict(),
  loadAverageAtEnd: z.array(finite.nonnegative()).length(3),
  scenarios: z.array(scenario),
}).strict();

/** null when `json` is a well-formed report.json, else the first problem and where it is. */
export function checkReportJson(json: unknown): string | null {
  const r = benchReportSchema.safeParse(json);
  if (r.success) return null;
  const i = r.error.issues[0]!;
  return `report.json ${i.path.join('.') || '(root)'}: ${i.message}`;
}
