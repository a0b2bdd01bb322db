/**
 * Processes we started, by PID: whether one still runs, and stopping one
 * (SIGTERM, a grace period, then SIGKILL) until it is gone.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function pidAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
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
