/**
 * Runs the C load generator (tools/loadgen) and returns its validated JSON.
 * The binary is the only thing that touches the network; this module only
 * builds its argv, bounds it in time, and checks what it printed.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { EbmeshError } from '../src/errors.js';

export interface LoadgenOptions {
  /** http://IPv4:PORT/path or http://[IPv6]:PORT/path — numeric address only, the tool does not resolve names. */
  url: string;
  /** Requests per second across all connections; 0 = closed loop (saturation). */
  rate: number;
  durationS: number;
  connections: number;
  warmupS?: number;
  /** A request whose latency (from its scheduled time) passes this is a timeout. */
  timeoutMs?: number;
  /** New TCP connection per request: measures connection setup + request. */
  connectEach?: boolean;
  /** Upper bound on requests issued, warmup included. */
  maxRequests?: number;
  method?: string;
  headers?: string[];
  /** Runs the binary through this, e.g. ['ip', 'netns', 'exec', 'ns1']. */
  prefix?: string[];
  /** Defaults to $EBMESH_LOADGEN or the binary built by `npm run build`. */
  binary?: string;
  signal?: AbortSignal;
}

const latencySchema = z.object({
  count: z.number().int().nonnegative(),
  min: z.number().nonnegative(),
  mean: z.number().nonnegative(),
  stdev: z.number().nonnegative(),
  p50: z.number().nonnegative(),
  p90: z.number().nonnegative(),
  p99: z.number().nonnegative(),
  p999: z.number().nonnegative(),
  max: z.number().nonnegative(),
});

const count = z.number().int().nonnegative();

export const loadgenOutputSchema = z.object({
  tool: z.literal('ebmesh-loadgen'),
  version: z.number().int(),
  settings: z.object({
    url: z.string(),
    mode: z.enum(['open', 'closed']),
    rate: z.number().nonnegative(),
    duration_s: z.number().positive(),
    warmup_s: z.number().nonnegative(),
    connections: z.number().int().positive(),
    timeout_ms: z.number().positive(),
    connect_each: z.boolean(),
    max_requests: count,
  }),
  elapsed_s: z.number().nonnegative(),
  achieved_rate: z.number().nonnegative(),
  below_target: z.boolean(),
  requests: z.object({ scheduled: count, sent: count, completed: count, errors: count, timeouts: count }),
  errors: z.object({ connect: count, write: count, read: count, parse: count, closed: count }),
  status: z.record(z.string(), count),
  latency_us: latencySchema,
  distribution: z.array(z.tuple([z.number().min(0).max(100), z.number().nonnegative()])).min(1),
  timer_lag_us: z.object({ p50: z.number(), p99: z.number(), max: z.number() }),
  bytes_read: count,
  connects: count,
  cpu: z.object({ user_s: z.number().nonnegative(), sys_s: z.number().nonnegative() }),
});

export type LoadgenOutput = z.infer<typeof loadgenOutputSchema>;

export interface LoadResult {
  /** The exact argv that ran, prefix included, for the report. */
  command: string[];
  mode: 'open' | 'closed';
  targetRate: number;
  achievedRate: number;
  /** Open loop only: the achieved rate fell under 95% of the target. */
  belowTarget: boolean;
  requests: LoadgenOutput['requests'];
  errors: LoadgenOutput['errors'];
  status: Record<string, number>;
  latencyUs: LoadgenOutput['latency_us'];
  /** [percentile, microseconds] pairs, 0 through 100. */
  distribution: Array<[number, number]>;
  /** How late the generator's own timer fired: large values mean the client, not the server, was slow. */
  timerLagUs: LoadgenOutput['timer_lag_us'];
  /** CPU the generator used per second of measured time (1.0 = one core). */
  loadgenCpu: number;
  raw: LoadgenOutput;
}

export function defaultLoadgenPath(): string {
  const env = process.env['EBMESH_LOADGEN'];
  if (env) return env;
  // dist/bench/loadgen.js and bench/loadgen.ts are both two levels below the repo root.
  return fileURLToPath(new URL('../../tools/loadgen/build/ebmesh-loadgen', import.meta.url));
}

export function loadgenArgs(o: LoadgenOptions): string[] {
  const a = [
    '--url', o.url,
    '--rate', String(o.rate),
    '--duration', String(o.durationS),
    '--connections', String(o.connections),
    '--warmup', String(o.warmupS ?? 1),
    '--timeout', String(o.timeoutMs ?? 2000),
  ];
  if (o.connectEach) a.push('--connect-each');
  if (o.maxRequests !== undefined) a.push('--max-requests', String(o.maxRequests));
  if (o.method) a.push('--method', o.method);
  for (const h of o.headers ?? []) a.push('--header', h);
  return a;
}

/** Parses and validates one line of loadgen output. */
export function parseLoadgenOutput(text: string, command: string[]): LoadResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new EbmeshError('EBMESH_BENCH_LOADGEN_OUTPUT', 'load generator printed something that is not JSON', {
      cause: e,
      hint: `output began with: ${text.slice(0, 200)}`,
    });
  }
  const r = loadgenOutputSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new EbmeshError('EBMESH_BENCH_LOADGEN_OUTPUT', `load generator JSON does not match its schema: ${issue?.message ?? 'invalid'}`, {
      where: issue ? `loadgen output: ${issue.path.join('.')}` : 'loadgen output',
    });
  }
  const d = r.data;
  const measured = d.settings.duration_s;
  return {
    command,
    mode: d.settings.mode,
    targetRate: d.settings.rate,
    achievedRate: d.achieved_rate,
    belowTarget: d.below_target,
    requests: d.requests,
    errors: d.errors,
    status: d.status,
    latencyUs: d.latency_us,
    distribution: d.distribution,
    timerLagUs: d.timer_lag_us,
    loadgenCpu: (d.cpu.user_s + d.cpu.sys_s) / Math.max(measured + d.settings.warmup_s, 1e-9),
    raw: d,
  };
}

export async function runLoadgen(opts: LoadgenOptions): Promise<LoadResult> {
  const binary = opts.binary ?? defaultLoadgenPath();
  if (!opts.prefix?.length && !existsSync(binary)) {
    throw new EbmeshError('EBMESH_BENCH_LOADGEN_MISSING', `load generator not found at ${binary}`, {
      hint: 'run `npm run build` (it runs `make -C tools/loadgen`, needs only gcc and make)',
    });
  }
  const command = [...(opts.prefix ?? []), binary, ...loadgenArgs(opts)];
  const [file, ...args] = command as [string, ...string[]];
  // The binary stops by itself after warmup + duration + timeout; the margin
  // only guards against a wedged child.
  const boundMs = ((opts.warmupS ?? 1) + opts.durationS) * 1000 + (opts.timeoutMs ?? 2000) + 15_000;

  return await new Promise<LoadResult>((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let killedFor: string | undefined;
    const kill = (why: string): void => {
      killedFor = why;
      if (child.pid !== undefined) {
        try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    };
    const timer = setTimeout(() => kill(`did not finish within ${boundMs} ms`), boundMs);
    const onAbort = (): void => kill('aborted');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { if (err.length < 8192) err += s; });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new EbmeshError('EBMESH_BENCH_LOADGEN_SPAWN', `cannot start ${file}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (killedFor) {
        reject(new EbmeshError('EBMESH_BENCH_LOADGEN_KILLED', `load generator ${killedFor}`, { where: command.join(' ') }));
        return;
      }
      if (code !== 0) {
        reject(new EbmeshError('EBMESH_BENCH_LOADGEN_FAILED', `load generator exited with ${code ?? sig}: ${err.trim()}`, {
          where: command.join(' '),
        }));
        return;
      }
      try {
        resolve(parseLoadgenOutput(out.trim(), command));
      } catch (e) {
        reject(e);
      }
    });
  });
}
