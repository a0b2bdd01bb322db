/**
 * The policy lab: the conformance world (namespaces x, y, z; workloads a, b,
 * c serving TCP and UDP on 80 and 81) in a TestMesh, with the cases'
 * addresses moved into the mesh's own pod range, and parallel probes run
 * inside each source workload.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { PACKAGE_ROOT, instancePaths, netnsName } from '../../src/paths.js';
import { cgroup2Root } from '../../src/kernel/fs.js';
import { PODS, caseWorld, podIp, type CaseStep, type Pod } from '../fixtures/policy-cases.js';
import type { TestMesh } from './mesh.js';

export const LAB_SCRIPT = join(PACKAGE_ROOT, 'test/helpers/policylab.py');

/**
 * The cases use 10.244.K.0/24 per namespace; a test mesh has one /24. Each
 * namespace gets a /28 in it (K*16), and a pod keeps its place in it, so
 * every cidr, except and /32 of a case means the same pods as before.
 */
export function relocate(podCIDR: string): (cidr: string) => string {
  const base = podCIDR.split('.').slice(0, 3).join('.');
  const ip = (a: string) => {
    const [, , k, x] = a.split('.').map(Number) as [number, number, number, number];
    return `${base}.${k * 16 + x - 8}`;
  };
  return (cidr) => {
    const [addr, lenText] = cidr.split('/') as [string, string];
    if (!addr.startsWith('10.244.')) return cidr;
    const len = Number(lenText);
    if (len <= 16) return podCIDR;
    if (len <= 24) return `${base}.${Number(addr.split('.')[2]) * 16}/28`;
    return `${ip(addr)}/${len}`;
  };
}

function rewriteCidrs(v: unknown, move: (c: string) => string): unknown {
  if (Array.isArray(v)) return v.map((x) => rewriteCidrs(x, move));
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k,
      k === 'cidr' && typeof x === 'string' ? move(x)
        : k === 'except' && Array.isArray(x) ? x.map((e) => move(String(e)))
          : rewriteCidrs(x, move)]));
  }
  return v;
}

export class PolicyLab {
  readonly move: (cidr: string) => string;
  readonly ipOf = new Map<Pod, string>();
  private applied = new Set<string>();

  constructor(readonly mesh: TestMesh) {
    this.move = relocate(mesh.podCIDR);
    for (const p of PODS) this.ipOf.set(p, this.move(`${podIp(p)}/32`).split('/')[0]!);
  }

  /** The step's whole world as YAML: namespaces, workloads, policies. */
  worldYaml(step?: Pick<CaseStep, 'podLabels' | 'namespaceLabels' | 'policies'>): string {
    const w = caseWorld(step);
    const workloads = w.workloads.map((x) => ({
      ...x, spec: { ...x.spec, ip: this.ipOf.get(`${x.metadata.namespace}/${x.metadata.name}` as Pod)!, command: ['python3', LAB_SCRIPT, 'serve', '80,81'] },
    }));
    const policies = (step?.policies ?? []).map((p) => rewriteCidrs(p, this.move));
    return [...w.namespaces, ...workloads, ...policies].map((d) => stringify(d)).join('---\n');
  }

  /**
   * Brings the mesh to a step: apply its world, delete the policies it no
   * longer has. Returns the CLI's error when apply refused the step.
   */
  applyStep(step: Pick<CaseStep, 'podLabels' | 'namespaceLabels' | 'policies'>, name: string): string | undefined {
    const r = this.mesh.cli('apply', '-f', this.mesh.file(`${name}.yaml`, this.worldYaml(step)));
    if (r.code !== 0) return r.stderr;
    const want = new Set(step.policies.map((p) => `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`));
    for (const ref of this.applied) {
      if (want.has(ref)) continue;
      const [ns = '', n = ''] = ref.split('/');
      this.mesh.ok('delete', 'networkpolicy', n, '-n', ns);
    }
    this.applied = want;
    return undefined;
  }

  async waitReady(timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const st = JSON.parse(this.mesh.ok('status', '-o', 'json')) as { workloads: Array<{ ready: boolean }> };
      if (st.workloads.length === PODS.length && st.workloads.every((w) => w.ready)) return;
      if (Date.now() > until) throw new Error(`workloads not ready: ${JSON.stringify(st.workloads)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * Spawns a command inside a workload the way `ebmesh exec` does (its
   * cgroup, then its network namespace), without starting the CLI for each
   * of the hundreds of probes.
   */
  spawnIn(from: Pod, argv: string[]) {
    const [ns, name] = from.split('/') as [string, string];
    const paths = instancePaths(this.mesh.instance);
    const cgroup = join(cgroup2Root(), paths.cgroupName, 'workloads', `${ns}.${name}`);
    return spawn('/bin/sh', ['-c', 'cg=$1 ns=$2; shift 2; echo $$ > "$cg/cgroup.procs" && exec ip netns exec "$ns" "$@"', 'sh',
      cgroup, netnsName(paths, ns, name), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Runs `probe` inside `from`: spec ("ip:port/PROTO") -> "ok" or the error. */
  probe(from: Pod, specs: string[], timeoutS = 0.6): Promise<Record<string, string>> {
    return new Promise((resolve, reject) => {
      const child = this.spawnIn(from, ['python3', LAB_SCRIPT, 'probe', String(timeoutS), ...specs]);
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.on('error', reject);
      child.on('exit', (code) => {
        clearTimeout(kill);
        if (code !== 0) reject(new Error(`probe from ${from} exited ${code}: ${err}`));
        else {
          try { resolve(JSON.parse(out) as Record<string, string>); } catch { reject(new Error(`probe from ${from}: ${out} ${err}`)); }
        }
      });
    });
  }
}
