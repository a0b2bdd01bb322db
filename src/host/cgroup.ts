/** cgroup v2 directories for the mesh and its workloads. */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Root } from '../kernel/fs.js';

/**
 * The argv that runs `argv` inside the cgroup at `path` (a directory under
 * the cgroup v2 root): a shell joins the cgroup first and then execs, so the
 * command is in it from its first syscall (and keeps its PID), and nothing it
 * forks or any socket it makes escapes it.
 */
export function inCgroup(path: string, argv: readonly string[], v1Roots: readonly string[] = []): [string, string[]] {
  // v1Roots first (best effort: a controller may refuse a move), then the v2 cgroup, which must succeed.
  const v1 = v1Roots.map((r) => `echo $$ > '${r.replace(/'/g, "'\\''")}/cgroup.procs' 2>/dev/null;`).join(' ');
  return ['/bin/sh', ['-c', `${v1} cg=$1; shift; echo $$ > "$cg/cgroup.procs" && exec "$@"`, 'sh', path, ...argv]];
}

/**
 * The argv that runs `argv` as part of a workload: in its cgroup first, then
 * in its network namespace (a name under /var/run/netns, or a path such as
 * an adopted pod's /proc/PID/ns/net; none: the host's), so the command is in
 * the mesh from its first syscall. `ebmesh exec` and the benchmarks both run
 * their commands this way.
 */
export function inWorkload(cgroup: string, netns: string | undefined, argv: readonly string[]): [string, string[]] {
  const enter = netns
    ? (netns.startsWith('/') ? ['nsenter', `--net=${netns}`, '--'] : ['ip', 'netns', 'exec', netns])
    : [];
  return inCgroup(cgroup, [...enter, ...argv]);
}

/**
 * The roots of the cgroup v1 hierarchies mounted here (a hybrid host). A
 * process moved to them leaves the v1 cgroups it was started in: a node
 * proxy started from the agent's container leaves the container's, so the
 * runtime does not take it down with the container (an agent upgrade).
 */
export function cgroupV1Roots(): string[] {
  try {
    return readFileSync('/proc/self/mounts', 'utf8').split('\n')
      .map((l) => l.split(' '))
      .filter((f) => f[2] === 'cgroup' && f[1] !== undefined)
      .map((f) => f[1]!.replace(/\\040/g, ' '));
  } catch {
    return [];
  }
}

/** The cgroup v2 a process is in, as a path under the cgroup v2 root ("/a/b"); undefined when it cannot be read. */
export function cgroupOfProcess(pid: number | 'self' = 'self'): string | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
    return line?.slice(3);
  } catch {
    return undefined;
  }
}

/** A cgroup's id (on cgroup v2, its directory's inode number); a relative path is under the cgroup v2 root. undefined: no such cgroup. */
export function cgroupId(path: string): bigint | undefined {
  try {
    return statSync(path.startsWith('/') ? path : join(cgroup2Root(), path), { bigint: true }).ino;
  } catch {
    return undefined;
  }
}

export function ensureCgroup(path: string): void {
  mkdirSync(path, { recursive: true });
}

export function cgroupPids(path: string): number[] {
  try {
    return readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function cgroupPopulated(path: string): boolean {
  try {
    return /populated 1/.test(readFileSync(join(path, 'cgroup.events'), 'utf8'));
  } catch {
    return false;
  }
}

/** Kills every process in a cgroup subtree and waits until it is empty. */
export async function killCgroup(path: string, timeoutMs = 3000): Promise<void> {
  if (!existsSync(path)) return;
  try {
    writeFileSync(join(path, 'cgroup.kill'), '1');
  } catch {
    for (const pid of cgroupPids(path)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  }
  const until = Date.now() + timeoutMs;
  while (cgroupPopulated(path) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
}

/** Removes a cgroup and its children, deepest first (they must be empty). */
export function removeCgroupTree(path: string): void {
  if (!existsSync(path)) return;
  for (const e of readdirSync(path, { withFileTypes: true })) {
    if (e.isDirectory()) removeCgroupTree(join(path, e.name));
  }
  try { rmdirSync(path); } catch { /* still busy: left for the next down */ }
}
