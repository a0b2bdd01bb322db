/**
 * What a set of processes costs while a benchmark runs: CPU from
 * /proc/PID/stat (utime + stime), memory from /proc/PID/smaps_rollup (PSS,
 * which splits shared pages fairly between processes) with /proc/PID/status
 * VmRSS as the fallback. Each root PID counts with all its descendants, found
 * anew at every sample so workers forked during the run are included.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface Footprint {
  /** CPU time over wall time while sampling, in percent of one core. */
  cpuPercent: number;
  cpuSeconds: number;
  wallSeconds: number;
  /** Largest summed RSS seen, bytes. */
  maxRssBytes: number;
  /** Largest summed PSS seen, bytes; null when smaps_rollup is unreadable. */
  maxPssBytes: number | null;
  /** Most processes seen in the tree at once. */
  maxProcesses: number;
  samples: number;
}

export interface FootprintSampler {
  stop(): Footprint;
}

const CLK_TCK = 100; // USER_HZ is 100 on every Linux architecture Node runs on

interface ProcCpu { ppid: number; ticks: number }

function readStat(pid: number): ProcCpu | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm may contain spaces and parentheses; fields resume after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
  const ppid = Number(rest[1]);
  const ticks = Number(rest[11]) + Number(rest[12]);
  return Number.isFinite(ticks) ? { ppid, ticks } : null;
}

/** The roots and all their living descendants. */
export function processTree(roots: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const seen = new Set<number>();
  const stack = roots.filter((p) => readStat(p) !== null);
  while (stack.length) {
    const p = stack.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    stack.push(...(children.get(p) ?? []));
  }
  return [...seen];
}

function kbField(text: string, field: string): number | null {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

function memoryOf(pid: number): { rss: number; pss: number | null } {
  let rss = 0;
  try {
    rss = kbField(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS') ?? 0;
  } catch { /* exited */ }
  let pss: number | null = null;
  try {
    pss = kbField(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
  } catch { /* older kernel or no permission */ }
  return { rss, pss };
}

/**
 * Starts sampling now; stop() takes a last sample and returns the totals.
 * descendants: false counts the given processes alone (the node daemon,
 * whose descendants are the lab's workloads, the load under test).
 * CPU is the growth of each process's tick counter up to its last sighting,
 * so a process that exits mid-run keeps what it used until the sample before.
 */
export function sampleFootprint(pids: readonly number[], intervalMs = 500, opts: { descendants?: boolean } = {}): FootprintSampler {
  const descendants = opts.descendants ?? true;
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  let maxRss = 0;
  let maxPss: number | null = null;
  let pssMissing = false;
  let maxProcs = 0;
  let samples = 0;
  const t0 = process.hrtime.bigint();

  const sample = (): void => {
    const tree = descendants ? processTree(pids) : pids.filter((p) => readStat(p) !== null);
    let rss = 0;
    let pss = 0;
    for (const p of tree) {
      const st = readStat(p);
      if (!st) continue;
      // A process born after the first sample spent all its ticks in the window.
      if (!first.has(p)) first.set(p, samples === 0 ? st.ticks : 0);
      last.set(p, st.ticks);
      const m = memoryOf(p);
      rss += m.rss;
      if (m.pss === null) pssMissing = true;
      else pss += m.pss;
    }
    maxRss = Math.max(maxRss, rss);
    if (!pssMissing) maxPss = Math.max(maxPss ?? 0, pss);
    maxProcs = Math.max(maxProcs, tree.length);
    samples++;
  };

  sample();
  const timer = setInterval(sample, intervalMs);
  timer.unref();
  return {
    stop(): Footprint {
      clearInterval(timer);
      sample();
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      let ticks = 0;
      for (const [p, t] of last) ticks += t - (first.get(p) ?? t);
      const cpuSeconds = ticks / CLK_TCK;
      return {
        cpuPercent: wall > 0 ? (cpuSeconds / wall) * 100 : 0,
        cpuSeconds,
        wallSeconds: wall,
        maxRssBytes: maxRss,
        maxPssBytes: pssMissing ? null : maxPss,
        maxProcesses: maxProcs,
        samples,
      };
    },
  };
}
