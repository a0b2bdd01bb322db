/** cgroup v2 directories for the mesh and its workloads. */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

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
