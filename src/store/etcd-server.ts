/**
 * Starts a single-member etcd (Debian's etcd-server) on 127.0.0.1 for the
 * lab, the tests and the benchmarks, and stops it by its PID. Production
 * runs its own etcd; the mesh needs its client URL and a client certificate.
 *
 * The member speaks only TLS and asks every client and peer for a
 * certificate of its own CA (etcd-pki.ts): on this host any local user can
 * reach 127.0.0.1, and whoever writes etcd writes the desired state.
 */
import { spawn } from 'node:child_process';
import { closeSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { request } from 'node:https';
import { EbmeshError } from '../errors.js';
import { ensureEtcdPki, type EtcdTlsFiles } from './etcd-pki.js';
import { openPrivateLog, privateDir } from '../host/private-files.js';

export interface EtcdServer {
  pid: number;
  /** https://127.0.0.1:PORT */
  endpoint: string;
  /** What a client presents and trusts (the control plane's). */
  client: EtcdTlsFiles;
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
  /** The member's CA and certificates (made here when missing, etcd-pki.ts). */
  pkiDir: string;
  clientPort?: number;
  peerPort?: number;
  /** Detached: outlives the process that started it (the lab). */
  detached?: boolean;
  timeoutMs?: number;
  /**
   * A member of a cluster of several: its name and every member's name and
   * peer port (its own among them; peerPort must be given). `existing` for a
   * member that joins again with the data dir it had. Without it, a cluster
   * of one.
   */
  cluster?: { name: string; members: Array<{ name: string; peerPort: number }>; state?: 'new' | 'existing' };
}

export async function startEtcd(o: StartEtcdOptions): Promise<EtcdServer> {
  const clientPort = o.clientPort ?? await freePort();
  const peerPort = o.peerPort ?? await freePort();
  privateDir(o.dataDir);
  const pki = await ensureEtcdPki(o.pkiDir);
  const endpoint = `https://127.0.0.1:${clientPort}`;
  const peer = `https://127.0.0.1:${peerPort}`;
  const logPath = join(o.dataDir, '..', `etcd-${clientPort}.log`);
  const log = openPrivateLog(logPath);
  const name = o.cluster?.name ?? 'ebmesh';
  const initialCluster = o.cluster
    ? o.cluster.members.map((m) => `${m.name}=https://127.0.0.1:${m.peerPort}`).join(',')
    : `ebmesh=${peer}`;
  const child = spawn('etcd', [
    '--name', name, '--data-dir', o.dataDir,
    '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', initialCluster,
    ...(o.cluster ? ['--initial-cluster-state', o.cluster.state ?? 'new', '--initial-cluster-token', `ebmesh-${o.cluster.members.map((m) => m.peerPort).join('-')}`] : []),
    '--cert-file', pki.server.cert, '--key-file', pki.server.key, '--trusted-ca-file', pki.server.ca, '--client-cert-auth',
    '--peer-cert-file', pki.server.cert, '--peer-key-file', pki.server.key, '--peer-trusted-ca-file', pki.server.ca, '--peer-client-cert-auth',
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
    if (await healthy(endpoint, pki.client)) return { pid: child.pid!, endpoint, client: pki.client, clientPort, peerPort, dataDir: o.dataDir };
    await new Promise((r) => setTimeout(r, 50));
  }
  try { process.kill(child.pid!, 'SIGKILL'); } catch { /* gone */ }
  throw new EbmeshError('EBMESH_ETCD_START', `etcd did not become healthy in time`, { hint: `log: ${logPath}` });
}

/** etcd's /health at ENDPOINT, asked with the client certificate in TLS. */
export function healthy(endpoint: string, tls: EtcdTlsFiles): Promise<boolean> {
  let files: { ca: Buffer; cert: Buffer; key: Buffer };
  try {
    files = { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) };
  } catch {
    return Promise.resolve(false);
  }
  const u = new URL(endpoint);
  return new Promise((resolve) => {
    const req = request({ host: u.hostname, port: u.port, path: '/health', method: 'GET', timeout: 1000, agent: false, ...files }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        try { resolve(res.statusCode === 200 && (JSON.parse(text) as { health?: string }).health === 'true'); } catch { resolve(false); }
      });
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
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
