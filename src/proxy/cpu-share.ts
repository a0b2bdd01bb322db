/**
 * The node proxy's share of the CPU when the node is busy.
 *
 * Linux does not share CPU time between processes but between groups: one
 * per session when autogroup is on (Debian's default, `kernel.sched_autogroup_enabled`),
 * or one per cgroup where the cgroup v2 cpu controller is on. The node proxy
 * is one session and one cgroup, and it does the L7 work of every workload of
 * the node with one busy worker per core. Left at the default weight, all its
 * workers together get what one workload's session gets, and under contention
 * every proxied request waits behind that. In the sidecar model the same work
 * is done by one proxy process per workload, each with its own share.
 *
 * So the proxy asks for one group's share per worker: as if each worker were
 * a session of its own, which is what it would get with autogroup off.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Root } from '../kernel/fs.js';

/** cgroup v2's cpu.weight of a group that asks for nothing (the kernel's default). */
const DEFAULT_CPU_WEIGHT = 100;
const MAX_CPU_WEIGHT = 10_000;
/** Each nice level is a weight ratio of about 1.25 (the kernel's sched_prio_to_weight table). */
const NICE_STEP = 1.25;

function groups(workers: number): number {
  if (!Number.isInteger(workers) || workers < 1) throw new RangeError(`workers must be a positive integer, got ${workers}`);
  return workers;
}

/** The autogroup nice whose weight is nearest `workers` times nice 0's, within -20..0. */
export function autogroupNiceFor(workers: number): number {
  return 0 - Math.min(20, Math.round(Math.log(groups(workers)) / Math.log(NICE_STEP))); // 0 - x: never a "-0" written to the kernel
}

/** cgroup v2 cpu.weight for `workers` groups' worth, within the kernel's 1..10000. */
export function cpuWeightFor(workers: number): number {
  return Math.min(MAX_CPU_WEIGHT, DEFAULT_CPU_WEIGHT * groups(workers));
}

export interface CpuShare {
  /** What was set, for the log: e.g. "autogroup nice -3" or "cpu.weight 200 on /ebmesh.x_proxy". */
  set: string[];
  /** What could not be set, and why (the proxy runs on regardless). */
  failed: string[];
}

/**
 * Claims `workers` groups' share for this process's session and for its
 * cgroup (`cgroupDir`, from cgroupDirOf). Both where both apply: the
 * autogroup counts only while the process sits in a cgroup without the cpu
 * controller. Never throws: a proxy without its share is slower under
 * contention, not broken.
 */
export function claimCpuShare(workers: number, files: { autogroup?: string; cgroupDir: string | undefined }): CpuShare {
  const out: CpuShare = { set: [], failed: [] };
  const autogroup = files.autogroup ?? '/proc/self/autogroup';
  if (existsSync(autogroup)) {
    const nice = autogroupNiceFor(workers);
    try {
      writeFileSync(autogroup, String(nice));
      out.set.push(`autogroup nice ${nice}`);
    } catch (e) {
      out.failed.push(`autogroup nice ${nice}: ${(e as Error).message}`);
    }
  }
  const dir = files.cgroupDir;
  const weightFile = dir && join(dir, 'cpu.weight');
  if (weightFile && existsSync(weightFile)) {
    const weight = cpuWeightFor(workers);
    try {
      writeFileSync(weightFile, String(weight));
      out.set.push(`cpu.weight ${weight} on ${dir}`);
    } catch (e) {
      out.failed.push(`cpu.weight ${weight} on ${dir}: ${(e as Error).message}`);
    }
  }
  return out;
}

/** The directory of a cgroup v2 path ("/a/b", as cgroupOfProcess gives it), unless it is the root (whose weight is not ours to change). */
export function cgroupDirOf(rel: string | undefined): string | undefined {
  if (!rel || rel === '/') return undefined;
  try {
    return join(cgroup2Root(), rel);
  } catch {
    return undefined;
  }
}

/** The nice of a process's autogroup, from /proc/PID/autogroup ("/autogroup-12 nice -3"); undefined if unknown. */
export function autogroupNiceOf(pid: number): number | undefined {
  try {
    const m = /nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
