/**
 * `ebmesh bench convergence`: how long a change takes from `apply` to being
 * in every node's kernel maps, in a multi-node lab (etcd, control plane, N
 * agents) holding 1,000 Services and 10,000 endpoints. Endpoints are
 * external Workloads (spec.external: an ip, no process, no cgroup): 10,000
 * lab processes or 10,000 adopted cgroups would measure process start-up
 * and program attachment, not the control plane's path to the maps.
 *
 * Measured by polling each node's pinned frontend map: the frontend of the
 * changed Service must hold the new backend count. First the bulk apply of
 * everything, then single-endpoint changes one at a time.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT, nodePaths } from '../src/paths.js';
import { bpf } from '../src/kernel/libbpf.js';
import { RawMap } from '../src/kernel/index.js';
import { Lb4Frontend, Lb4FrontendKey } from '../src/abi/structs.js';
import { EbmeshError } from '../src/errors.js';
import { claimBenchInstance } from './lab-instances.js';

const CLI = join(PACKAGE_ROOT, 'bin/ebmesh');
const vip = (i: number) => `10.99.${(i + 1) >> 8}.${(i + 1) & 255}`;
const epIp = (j: number) => `10.250.${j >> 8}.${j & 255}`;

/** The CLI on INSTANCE; applies of 10,000 resources take longer than the scenarios' usual CLI timeout. */
const instanceCli = (instance: string) => (...args: string[]): string => {
  const r = spawnSync(CLI, ['--instance', instance, ...args], { encoding: 'utf8', timeout: 900_000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new EbmeshError('EBMESH_BENCH', `ebmesh ${args.slice(0, 3).join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
};

const down = (instance: string) => { try { instanceCli(instance)('down'); } catch { /* reported by the next run's down */ } };

function openFrontends(instance: string, node: string): RawMap {
  const fd = bpf.bpf_obj_get(join(nodePaths(instance, node).mapPins, 'ebm_lb4_frontends')) as number;
  if (fd < 0) throw new EbmeshError('EBMESH_BENCH', `no frontend map pinned for ${node}`);
  return new RawMap(fd, { name: 'ebm_lb4_frontends', type: 1, keySize: Lb4FrontendKey.size, valueSize: Lb4Frontend.size, maxEntries: 0 }, true);
}

function backendCount(m: RawMap, i: number): number {
  const v = m.lookup(Lb4FrontendKey.encode({ vip: vip(i), port: 80, proto: 6, pad: 0 }));
  return v ? Lb4Frontend.decode(v).count : -1;
}

const svc = (i: number) => `apiVersion: v1\nkind: Service\nmetadata: {name: s${i}, namespace: bench}\nspec:\n  clusterIP: ${vip(i)}\n  selector: {app: s${i}}\n  ports: [{port: 80, targetPort: 8080}]\n---\n`;
const ep = (j: number, svcIdx: number, node: string) =>
  `apiVersion: ebmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: e${j}, namespace: bench, labels: {app: s${svcIdx}}}\nspec: {node: ${node}, external: true, ip: ${epIp(j)}, ports: [{containerPort: 8080}]}\n---\n`;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function waitAll(maps: Map<string, RawMap>, done: (m: RawMap) => boolean, t0: number, timeoutMs: number): Promise<number[]> {
  const left = new Map(maps);
  const out: number[] = [];
  const until = t0 + timeoutMs;
  while (left.size) {
    for (const [n, m] of left) {
      if (done(m)) { out.push(performance.now() - t0); left.delete(n); }
    }
    if (performance.now() > until) throw new EbmeshError('EBMESH_BENCH', `nodes ${[...left.keys()].join(', ')} did not converge in ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return out;
}

export interface ConvergenceSettings { nodes: number; services: number; endpoints: number; changes: number }
/** What `bench convergence` and the suite measure, full and quick. */
export const CONVERGENCE_FULL: ConvergenceSettings = { nodes: 3, services: 1000, endpoints: 10000, changes: 30 };
export const CONVERGENCE_QUICK: ConvergenceSettings = { nodes: 2, services: 50, endpoints: 200, changes: 1 };

export interface ConvergenceOptions extends ConvergenceSettings { quick: boolean; outDir: string; json: boolean }

export interface ConvergenceReport {
  scenario: 'convergence';
  /** The lab's instance name (ebbench-conv-PID). */
  instance: string;
  nodes: number;
  services: number;
  endpoints: number;
  store: 'etcd';
  bulk: { applyMs: number; everyNodeMs: number[] };
  change: { samples: number; p50Ms: number; p99Ms: number; maxMs: number; applyCommandP50Ms: number };
  note: string;
}

/** Brings up the lab, measures, tears it down; what `bench convergence` prints and the suite's scenario reports. */
export async function measureConvergence(o: ConvergenceSettings, progress: (s: string) => void): Promise<ConvergenceReport> {
  const dir = mkdtempSync(join(tmpdir(), 'ebmesh-conv-'));
  const nodes = Array.from({ length: o.nodes }, (_, i) => `node-${i + 1}`);
  const maps = new Map<string, RawMap>();
  const instance = claimBenchInstance('conv', down);
  const cli = instanceCli(instance);
  try {
    const mesh = join(dir, 'mesh.yaml');
    writeFileSync(mesh, 'apiVersion: ebmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {serviceCIDR: 10.99.0.0/16, podCIDR: 10.247.0.0/16}\n');
    progress(`bringing up ${o.nodes} nodes with etcd`);
    cli('up', '--nodes', String(o.nodes), '-f', mesh);
    for (const n of nodes) maps.set(n, openFrontends(instance, n));

    const per = o.endpoints / o.services;
    let text = '';
    for (let i = 0; i < o.services; i++) text += svc(i);
    for (let j = 0; j < o.endpoints; j++) text += ep(j, Math.floor(j / per), nodes[j % nodes.length]!);
    const big = join(dir, 'big.yaml');
    writeFileSync(big, text);
    progress(`applying ${o.services} services and ${o.endpoints} endpoints`);
    let t0 = performance.now();
    cli('apply', '-f', big);
    const applyMs = performance.now() - t0;
    const last = o.services - 1;
    const bulk = await waitAll(maps, (m) => backendCount(m, last) === per && backendCount(m, 0) === per, t0, 600_000);

    progress(`${o.changes} single-endpoint changes`);
    const samples: number[] = [];
    const applyOne: number[] = [];
    for (let k = 0; k < o.changes; k++) {
      const i = (k * 37) % o.services;
      const f = join(dir, `c${k}.yaml`);
      writeFileSync(f, ep(o.endpoints + k, i, nodes[k % nodes.length]!));
      const before = backendCount(maps.get(nodes[0]!)!, i);
      t0 = performance.now();
      cli('apply', '-f', f);
      applyOne.push(performance.now() - t0);
      samples.push(...await waitAll(maps, (m) => backendCount(m, i) === before + 1, t0, 120_000));
    }
    samples.sort((a, b) => a - b);
    bulk.sort((a, b) => a - b);
    return {
      scenario: 'convergence', instance, nodes: o.nodes, services: o.services, endpoints: o.endpoints, store: 'etcd',
      bulk: { applyMs: Math.round(applyMs), everyNodeMs: bulk.map(Math.round) },
      change: { samples: samples.length, p50Ms: +pct(samples, 50).toFixed(1), p99Ms: +pct(samples, 99).toFixed(1), maxMs: +samples.at(-1)!.toFixed(1),
        applyCommandP50Ms: +pct([...applyOne].sort((a, b) => a - b), 50).toFixed(1) },
      note: 'time from the start of `ebmesh apply` (a CLI process) to the frontend of the changed Service holding the new backend count in each node\'s pinned map',
    };
  } finally {
    for (const m of maps.values()) m.close();
    down(instance);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runConvergence(o: ConvergenceOptions, progress: (s: string) => void, out: (s: string) => void): Promise<void> {
  const report = await measureConvergence(o, progress);
  mkdirSync(o.outDir, { recursive: true });
  writeFileSync(join(o.outDir, 'convergence.json'), JSON.stringify(report, null, 2));
  if (o.json) out(JSON.stringify(report, null, 2));
  else {
    out(`convergence, ${o.nodes} nodes, ${o.services} services, ${o.endpoints} endpoints (store: etcd)`);
    out(`  bulk apply of everything: apply returned in ${report.bulk.applyMs} ms; in every node's maps after ${report.bulk.everyNodeMs.join(', ')} ms`);
    out(`  one endpoint added (${report.change.samples} samples = ${o.changes} changes x ${o.nodes} nodes): p50 ${report.change.p50Ms} ms, p99 ${report.change.p99Ms} ms, max ${report.change.maxMs} ms`);
    out(`  (the apply command alone, CLI start included: p50 ${report.change.applyCommandP50Ms} ms)`);
    out(`report: ${join(o.outDir, 'convergence.json')}`);
  }
}
