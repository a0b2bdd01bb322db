/**
 * Processes we started, by PID: whether one still runs, and stopping one
 * (SIGTERM, a grace period, then SIGKILL) until it is gone.
 */
import { readFileSync } from 'node:fs';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Whether the process still runs. A zombie does not: it has exited and only
 * waits for its parent to reap it. Ours are mostly reparented to PID 1
 * (daemons outlive the command that started them), and an init may take a
 * second or more to reap (this lab's does): signal 0 alone would count that
 * wait as the process still stopping.
 */
export function pidAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return !exitedAwaitingReap(pid);
}

function exitedAwaitingReap(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return true; // gone between the two looks
  }
  // "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X';
}

/** Resolves once the process is gone (or 5 s after SIGKILL, should the kernel be slow to reap it). */
export async function stopPid(pid: number | undefined, graceMs: number): Promise<void> {
  if (!pidAlive(pid)) return;
  try { process.kill(pid!, 'SIGTERM'); } catch { return; }
  const until = Date.now() + graceMs;
  while (pidAlive(pid) && Date.now() < until) await sleep(20);
  if (!pidAlive(pid)) return;
  try { process.kill(pid!, 'SIGKILL'); } catch { return; }
  for (let i = 0; i < 250 && pidAlive(pid); i++) await sleep(20);
}
