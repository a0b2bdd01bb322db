/**
 * What a set of processes costs while a benchmark runs: CPU from
 * /proc/PID/stat (utime + stime), memory from /proc/PID/smaps_rollup (PSS,
 * which splits shared pages fairly between processes) with /proc/PID/status
 * VmRSS as the fallback. Each root PID counts with all its descendants, found
 * anew at every sample so workers forked during the run are included.
 * Kernel memory of BPF maps and programs is no process's: bpfFootprint
 * reads it from the kernel's own accounting (bytes_memlock).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { procStat } from '../src/host/pids.js';

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
  const field = procStat(pid);
  if (!field) return null;
  const ppid = Number(field(4));
  const ticks = Number(field(14)) + Number(field(15)); // utime + stime
  return Number.isFinite(ticks) ? { ppid, ticks } : null;
}

/** The roots and all their living descendants, except the subtrees rooted at `exclude`. */
export function processTree(roots: readonly number[], exclude: readonly number[] = []): number[] {
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
  const skip = new Set(exclude);
  const stack = roots.filter((p) => readStat(p) !== null);
  while (stack.length) {
    const p = stack.pop()!;
    if (seen.has(p) || skip.has(p)) continue;
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
 * whose descendants are the lab's workloads, the load under test); exclude
 * leaves those processes and their subtrees out of the tree.
 * CPU is the growth of each process's tick counter up to its last sighting,
 * so a process that exits mid-run keeps what it used until the sample before.
 */
export function sampleFootprint(
  pids: readonly number[],
  intervalMs = 500,
  opts: { descendants?: boolean; exclude?: readonly number[] } = {},
): FootprintSampler {
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
    const tree = descendants ? processTree(pids, opts.exclude) : pids.filter((p) => readStat(p) !== null);
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

/**
 * Waits, at most maxMs, until the process trees use less than `percent` of
 * a core over one window: a proxy still draining a backlog after an
 * overloaded run would otherwise load the next measurement. False when they
 * never went quiet.
 */
export async function waitQuiet(pids: readonly number[], percent = 10, windowMs = 500, maxMs = 10_000): Promise<boolean> {
  const until = Date.now() + maxMs;
  while (Date.now() < until) {
    const s = sampleFootprint(pids, windowMs);
    await new Promise((r) => setTimeout(r, windowMs));
    if (s.stop().cpuPercent < percent) return true;
  }
  return false;
}

export interface BpfFootprint {
  programs: number;
  maps: number;
  /** Kernel memory charged for the programs (bytes_memlock: instructions and JIT image). */
  programBytes: number;
  /** Kernel memory charged for every map those programs use (sized by max_entries, not by what is stored). */
  mapBytes: number;
  /** The three largest maps, by kernel memory. */
  largestMaps: Array<{ name: string; bytes: number }>;
}

function bpftoolJson<T>(args: string[]): T {
  const r = spawnSync('bpftool', ['-j', ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.error || r.status !== 0) throw new Error(`bpftool ${args.join(' ')} failed: ${r.error?.message ?? r.stderr.trim()} (apt-get install -y bpftool)`);
  return JSON.parse(r.stdout) as T;
}

function pinsUnder(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? pinsUnder(p) : [p];
  });
}

/**
 * The programs attached through the links pinned under `linkPins` (any
 * depth), and every map they use, found from the programs' own map_ids so
 * that unpinned maps (.rodata, .bss) count too.
 */
export function bpfFootprint(linkPins: string): BpfFootprint {
  const progIds = new Set<number>();
  for (const pin of pinsUnder(linkPins)) progIds.add(bpftoolJson<{ prog_id: number }>(['link', 'show', 'pinned', pin]).prog_id);
  const progs = bpftoolJson<Array<{ id: number; bytes_memlock?: number; map_ids?: number[] }>>(['prog', 'show']).filter((p) => progIds.has(p.id));
  const mapIds = new Set(progs.flatMap((p) => p.map_ids ?? []));
  const maps = bpftoolJson<Array<{ id: number; name?: string; bytes_memlock?: number }>>(['map', 'show']).filter((m) => mapIds.has(m.id));
  return {
    programs: progs.length,
    maps: maps.length,
    programBytes: progs.reduce((a, p) => a + (p.bytes_memlock ?? 0), 0),
    mapBytes: maps.reduce((a, m) => a + (m.bytes_memlock ?? 0), 0),
    largestMaps: maps.map((m) => ({ name: m.name ?? `#${m.id}`, bytes: m.bytes_memlock ?? 0 })).sort((a, b) => b.bytes - a.bytes).slice(0, 3),
  };
}
