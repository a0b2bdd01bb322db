/**
 * Starts a single-member etcd (Debian's etcd-server) on 127.0.0.1 for the
 * lab, the tests and the benchmarks, and stops it by its PID. Production
 * runs its own etcd; the mesh only needs its client URL.
 */
import { spawn } from 'node:child_process';
import { closeSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { EbmeshError } from '../errors.js';
import { openPrivateLog, privateDir } from '../host/private-files.js';

export interface EtcdServer {
  pid: number;
  endpoint: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface StartEtcdOptions {
  dataDir: string;
  clientPort?: number;
  peerPort?: number;
  /** Detached: outlives the process that started it (the lab). */
  detached?: boolean;
  timeoutMs?: number;
}

export async function startEtcd(o: StartEtcdOptions): Promise<EtcdServer> {
  const clientPort = o.clientPort ?? await freePort();
  const peerPort = o.peerPort ?? await freePort();
  privateDir(o.dataDir);
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const logPath = join(o.dataDir, '..', `etcd-${clientPort}.log`);
  const log = openPrivateLog(logPath);
  const child = spawn('etcd', [
    '--name', 'ebmesh', '--data-dir', o.dataDir,
    '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `ebmesh=${peer}`,
    // One apply of 1,000 services and 10,000 endpoints is one txn: raise etcd's per-txn limits.
    '--max-txn-ops', '100000', '--max-request-bytes', String(64 << 20),
    '--quota-backend-bytes', String(2 << 30),
    '--auto-compaction-mode', 'revision', '--auto-compaction-retention', '10000',
    '--log-level', 'warn',
  ], { detached: o.detached ?? false, stdio: ['ignore', log, log] });
  closeSync(log);
  if (o.detached) child.unref();
  let exited: number | null = null;
  child.on('exit', (c) => (exited = c ?? 1));
  const until = Date.now() + (o.timeoutMs ?? 20_000);
  while (Date.now() < until) {
    if (exited !== null) {
      throw new EbmeshError('EBMESH_ETCD_START', `etcd exited (${exited}): ${readFileSync(logPath, 'utf8').trim().split('\n').slice(-3).join(' | ')}`, { hint: `log: ${logPath}` });
    }
    if (await healthy(endpoint)) return { pid: child.pid!, endpoint, clientPort, peerPort, dataDir: o.dataDir };
    await new Promise((r) => setTimeout(r, 50));
  }
  try { process.kill(child.pid!, 'SIGKILL'); } catch { /* gone */ }
  throw new EbmeshError('EBMESH_ETCD_START', `etcd did not become healthy in time`, { hint: `log: ${logPath}` });
}

export async function healthy(endpoint: string): Promise<boolean> {
  try {
    const r = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    return r.ok && ((await r.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/** Stops etcd by PID and waits for it to be gone. */
export async function stopEtcd(pid: number, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<void> {
  try { process.kill(pid, signal); } catch { return; }
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try { process.kill(pid, 0); } catch { return; }
    await new Promise((r) => setTimeout(r, 20));
  }
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}
