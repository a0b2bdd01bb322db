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

/**
 * /proc/PID/stat, field by its number in proc(5) (3 state, 4 ppid, 14 utime,
 * 22 starttime, …); undefined once the process is gone. The command name
 * (field 2) may hold spaces and parentheses: fields resume after the last ')'.
 */
export function procStat(pid: number): ((field: number) => string | undefined) | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (field) => rest[field - 3];
}

function exitedAwaitingReap(pid: number): boolean {
  const state = procStat(pid)?.(3);
  // Gone between the two looks counts as exited too.
  return state === undefined || state === 'Z' || state === 'X';
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
