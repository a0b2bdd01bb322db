/**
 * wrk (Debian package) as a closed-loop reference: comparing its saturation
 * throughput with the loadgen's shows whether our client is the bottleneck.
 * wrk reports latency from the actual send, so its percentiles hide queueing;
 * only its throughput is compared.
 */
import { spawn } from 'node:child_process';
import { EbmeshError } from '../src/errors.js';
import type { RunResult } from './scenario.js';

export interface WrkOptions {
  url: string;
  durationS: number;
  connections: number;
  threads?: number;
  timeoutS?: number;
  prefix?: string[];
  binary?: string;
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 };

function micros(text: string): number | null {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  return m ? Number(m[1]) * UNIT_US[m[2]!]! : null;
}

export function parseWrkOutput(text: string, command: string[]): RunResult {
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!rate) {
    throw new EbmeshError('EBMESH_BENCH_WRK_OUTPUT', 'wrk output has no Requests/sec line', { hint: text.slice(0, 300) });
  }
  const pct = (p: string): number | null => {
    const m = new RegExp(`^\\s+${p.replace('.', '\\.')}%\\s+(\\S+)`, 'm').exec(text);
    return m ? micros(m[1]!) : null;
  };
  const stats = /^\s+Latency\s+(\S+)\s+\S+\s+(\S+)/m.exec(text);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const errors = sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) : 0;
  return {
    tool: 'wrk',
    command,
    rate: Number(rate[1]),
    targetRate: null,
    errors,
    timeouts: sock ? Number(sock[4]) : 0,
    badStatus: non2xx ? Number(non2xx[1]) : 0,
    latencyUs: {
      mean: stats ? micros(stats[1]!) : null,
      p50: pct('50'),
      p90: pct('90'),
      p99: pct('99'),
      p999: null,
      max: stats ? micros(stats[2]!) : null,
    },
    distribution: null,
    belowTarget: false,
    clientCpu: null,
    footprints: {},
  };
}

export async function runWrk(o: WrkOptions): Promise<RunResult> {
  const command = [
    ...(o.prefix ?? []),
    o.binary ?? 'wrk',
    `-t${o.threads ?? 1}`,
    `-c${o.connections}`,
    `-d${o.durationS}s`,
    `--timeout`, `${o.timeoutS ?? 2}s`,
    '--latency',
    o.url,
  ];
  const bound = (o.durationS + (o.timeoutS ?? 2) + 15) * 1000;
  const [file, ...args] = command as [string, ...string[]];
  return await new Promise<RunResult>((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      if (child.pid !== undefined) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
    }, bound);
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; });
    child.stderr.resume();
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new EbmeshError('EBMESH_BENCH_TOOL_MISSING', `cannot start wrk: ${e.message}`, { hint: 'apt-get install -y wrk' }));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (killed || code !== 0) {
        reject(new EbmeshError('EBMESH_BENCH_WRK_FAILED', killed ? `wrk did not finish within ${bound} ms` : `wrk exited with ${code}`, { where: command.join(' ') }));
        return;
      }
      try { resolve(parseWrkOutput(out, command)); } catch (e) { reject(e); }
    });
  });
}
