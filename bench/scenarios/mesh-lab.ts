/**
 * What the mesh scenarios share: the CLI bound to the benchmark's own
 * instance, the workloads they measure between (nginx servers answering
 * "ok" on 8080 and an idle client), the resources they put in front of
 * them, and switching the mesh's programs off and on, each on the
 * scenario's own address plan so that no benchmark touches another
 * instance's ranges.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inWorkload } from '../../src/host/cgroup.js';
import { PACKAGE_ROOT, instancePaths } from '../../src/paths.js';
import { claimBenchInstance } from '../lab-instances.js';

/** The package's CLI. */
export const EBMESH_CLI = join(PACKAGE_ROOT, 'bin/ebmesh');

/** `ebmesh --instance INSTANCE ...`: stdout, or a thrown error with what the CLI said. */
export function instanceCli(instance: string): (...args: string[]) => string {
  return (...args) => {
    const r = spawnSync(EBMESH_CLI, ['--instance', instance, ...args], { encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`ebmesh ${args.slice(0, 3).join(' ')} failed: ${r.stderr || r.stdout}`);
    return r.stdout;
  };
}

/** `ebmesh down` that never throws: for finally blocks, where the instance may be half made. */
export function instanceDown(instance: string): void {
  spawnSync(EBMESH_CLI, ['--instance', instance, 'down'], { stdio: 'ignore', timeout: 600_000 });
}

/** A scenario run's own mesh instance (see lab-instances.ts) and the CLI bound to it. */
export interface BenchLab {
  /** `ebbench-TAG-PID`. */
  instance: string;
  cli: (...args: string[]) => string;
  /** The argv prefix that runs a command in one of the lab's workloads (`NS/NAME`, or NAME in namespace bench). */
  exec(workload: string): string[];
  /** `ebmesh down` that never throws (for finally blocks). */
  down(): void;
}

/** Claims this run's lab for scenario TAG, after taking down what crashed runs of TAG left behind. */
export function benchLab(tag: string): BenchLab {
  const instance = claimBenchInstance(tag, instanceDown);
  const cli = instanceCli(instance);
  return { instance, cli, exec: workloadEntry(cli), down: () => instanceDown(instance) };
}

/**
 * What `ebmesh exec WORKLOAD --` does (join the workload's cgroup, then its
 * network namespace), as a plain argv prefix: the workload's cgroup and
 * namespace are asked for once, not by a Node.js CLI started for every run,
 * whose start-up took about half a second and whose compiler threads still
 * ran beside the load generator's first requests.
 */
function workloadEntry(cli: (...args: string[]) => string): (workload: string) => string[] {
  const known = new Map<string, string[]>();
  return (workload) => {
    const hit = known.get(workload);
    if (hit) return hit;
    const [ns, name] = workload.includes('/') ? workload.split('/', 2) as [string, string] : ['bench', workload];
    const { status } = JSON.parse(cli('get', 'workload', name, '-n', ns, '-o', 'json')) as { status?: { cgroup?: string; netns?: string } };
    if (!status?.cgroup || !status.netns) throw new Error(`workload ${ns}/${name} is not running: no cgroup or network namespace in its status`);
    const [sh, args] = inWorkload(status.cgroup, status.netns, []);
    const prefix = [sh, ...args];
    known.set(workload, prefix);
    return prefix;
  };
}

/** What `ebmesh status -o json` says that the scenarios use. */
export interface MeshStatus {
  /** The node daemon (agent + control plane in a one-node lab); the workloads and the node proxy are its children. */
  pid: number;
  /** The store's revision, and the last one the agent reconciled. */
  revision: number;
  lastReconcile?: { revision: number };
  mesh?: { sameNodeShortcut?: boolean };
  proxy?: { pid?: number; stats?: { workers: number } };
  workloads: Array<{ name: string; namespace?: string; ip?: string; ready?: boolean; phase?: string; pid?: number }>;
  datapath: { counters: Record<string, number> };
}

export function meshStatus(cli: (...args: string[]) => string): MeshStatus {
  return JSON.parse(cli('status', '-o', 'json')) as MeshStatus;
}

/** The node proxy the agent steers to now (a handover replaces it: read again after one). */
export function nodeProxyPid(cli: (...args: string[]) => string): number {
  const pid = meshStatus(cli).proxy?.pid;
  if (!pid) throw new Error('the node proxy is not running although a Service has an HTTPRoute');
  return pid;
}

/** Polls status until every workload of the instance is ready (bounded); returns that status. */
export async function waitAllReady(cli: (...args: string[]) => string, expected: number, timeoutMs = 120_000): Promise<MeshStatus> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const st = meshStatus(cli);
    const ready = st.workloads.filter((w) => w.ready && w.pid);
    if (ready.length >= expected) return st;
    if (Date.now() > until) {
      const late = st.workloads.filter((w) => !w.ready).map((w) => `${w.name} (${w.phase ?? '?'})`);
      throw new Error(`${ready.length} of ${expected} workloads ready after ${timeoutMs / 1000} s; not ready: ${late.slice(0, 10).join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A workload's address, from the control plane. */
export function workloadIp(cli: (...args: string[]) => string, name: string, namespace = 'bench'): string {
  return (JSON.parse(cli('get', 'wl', name, '-n', namespace, '-o', 'json')) as { spec: { ip: string } }).spec.ip;
}

/** A Service's VIP, from the control plane. */
export function serviceVip(cli: (...args: string[]) => string, name: string, namespace = 'bench'): string {
  return (JSON.parse(cli('get', 'svc', name, '-n', namespace, '-o', 'json')) as { spec: { clusterIP: string } }).spec.clusterIP;
}

export interface BenchMeshOptions {
  serviceCIDR: string;
  podCIDR: string;
  /** IPv6 ranges: a dual-stack mesh (both or neither); the nginx servers listen on IPv6 too. */
  serviceCIDRv6?: string;
  podCIDRv6?: string;
  /** nginx worker processes (default 1). */
  workers?: number;
  /** Extra directives for nginx's http block (e.g. keep-alive limits). */
  http?: string;
  /** MeshConfig.sameNodeShortcut; the mesh's default (on) when not given. */
  shortcut?: boolean;
}

/** Where a workload runs and in which namespace (the multi-node scenarios place them). */
export interface Placement {
  namespace?: string;
  /** A node of a multi-node lab; absent on a single node. */
  node?: string;
}

const nodeLine = (node: string | undefined) => (node ? `\n  node: ${node}` : '');

/** The MeshConfig alone, as YAML (apply it to change a mesh-wide setting between runs). */
export function meshConfigYaml(o: Pick<BenchMeshOptions, 'serviceCIDR' | 'podCIDR' | 'serviceCIDRv6' | 'podCIDRv6' | 'shortcut'>): string {
  const sc = o.shortcut === undefined ? '' : `, sameNodeShortcut: ${o.shortcut}`;
  const v6 = o.serviceCIDRv6 && o.podCIDRv6 ? `, serviceCIDRv6: "${o.serviceCIDRv6}", podCIDRv6: "${o.podCIDRv6}"` : '';
  return `apiVersion: ebmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {serviceCIDR: ${o.serviceCIDR}, podCIDR: ${o.podCIDR}${v6}${sc}}
`;
}

/**
 * Turns the same-node shortcut on or off by applying the scenario's
 * MeshConfig again (in `dir`), then lets the agent reconcile. New
 * connections follow it; established ones keep their path.
 */
export async function applyShortcut(cli: (...args: string[]) => string, dir: string, plan: Pick<BenchMeshOptions, 'serviceCIDR' | 'podCIDR'>, on: boolean): Promise<void> {
  const f = join(dir, `shortcut-${on}.yaml`);
  writeFileSync(f, meshConfigYaml({ ...plan, shortcut: on }));
  cli('apply', '-f', f);
  // Applied once the agent reconciled the store's revision with the new setting (it reaches the kernel in that reconcile).
  const until = Date.now() + 30_000;
  for (;;) {
    const st = meshStatus(cli);
    if (st.mesh?.sameNodeShortcut === on && (st.lastReconcile?.revision ?? -1) >= st.revision) return;
    if (Date.now() > until) throw new Error(`the same-node shortcut was not ${on ? 'on' : 'off'} 30 s after the apply: ${JSON.stringify(st.mesh)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What an nginx workload serves: the locations of its one server (8080); "ok" at every path unless given. */
export interface NginxSite {
  locations?: string;
}

/**
 * An nginx Workload (namespace bench unless placed) on port http (8080).
 * The benches and the integration tests both run their servers from here,
 * so a config fix (temp paths, backlog) reaches all of them.
 */
export function nginxWorkload(name: string, app: string, o: Pick<BenchMeshOptions, 'workers' | 'http' | 'podCIDRv6'> & Placement & NginxSite = {}): string {
  // A dual-stack mesh's server answers on its IPv6 address too.
  const listen6 = o.podCIDRv6 ? ' listen [::]:8080 reuseport backlog=4096;' : '';
  return `apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: ${name}, namespace: ${o.namespace ?? 'bench'}, labels: {app: ${app}}}
spec:${nodeLine(o.node)}
  ports: [{name: http, containerPort: 8080}]
  files:
    nginx.conf: |
      daemon off; pid nginx.pid; error_log stderr warn; worker_processes ${o.workers ?? 1};
      events { worker_connections 4096; }
      http { access_log off; ${o.http ? `${o.http} ` : ''}client_body_temp_path tmp; proxy_temp_path tmp; fastcgi_temp_path tmp; uwsgi_temp_path tmp; scgi_temp_path tmp;
        server { listen 8080 reuseport backlog=4096;${listen6} ${o.locations ?? 'location / { return 200 "ok\\n"; }'} } }
  command: [nginx, -p, $(EBMESH_WORKDIR), -c, nginx.conf]
`;
}

/** An idle Workload (labelled app=NAME) that commands run in with `ebmesh exec`. */
export function idleWorkload(name: string, o: Placement = {}): string {
  return `apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: ${name}, namespace: ${o.namespace ?? 'bench'}, labels: {app: ${name}}}
spec: {${o.node ? `node: ${o.node}, ` : ''}command: [sleep, infinity]}
`;
}

/** The idle client workload (name client) to run the load generator in. */
export const clientYaml = (o: Placement = {}): string => idleWorkload('client', o);

/** MeshConfig, the nginx server (bench/server, port http 8080) and the client (bench/client), as YAML. */
export function benchMesh(o: BenchMeshOptions): string {
  return `${meshConfigYaml(o)}---
${nginxWorkload('server', 'server', o)}---
${clientYaml()}`;
}

/** A Service NAME:80 in namespace bench in front of the workloads labelled app=APP, port http. */
export function benchService(name: string, app: string): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: bench}
spec: {selector: {app: ${app}}, ports: [{port: 80, targetPort: http}]}
`;
}

/** An HTTPRoute sending all of Service NAME's traffic to itself: it puts the node proxy in the path. */
export function routeThroughProxy(name: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}, namespace: bench}
spec:
  parentRefs: [{kind: Service, name: ${name}}]
  rules: [{backendRefs: [{name: ${name}, port: 80}]}]
`;
}

/** Address of filler rule i: never a workload's, so only the last rule matches the client. */
const filler = (i: number) => `10.${200 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

/** The address filler policy rule i admits (for classic-firewall equivalents of serverPolicy). */
export const fillerAddress = filler;

/**
 * One NetworkPolicy (bench/server-in) selecting app=server: n - 1 filler
 * ipBlock rules that never match, then the client's (n >= 1); with
 * allowClient false the last rule admits another filler, so the client is refused.
 */
export function serverPolicy(n: number, allowClient = true): string {
  const rules: string[] = [];
  for (let i = 0; i < n - 1; i++) rules.push(`  - {from: [{ipBlock: {cidr: ${filler(i)}/32}}], ports: [{port: 8080}]}`);
  rules.push(allowClient ? '  - {from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 8080}]}' : `  - {from: [{ipBlock: {cidr: ${filler(n)}/32}}], ports: [{port: 8080}]}`);
  return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-in, namespace: bench}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
${rules.join('\n')}
`;
}

/** The programs that parse HTTP (observe.bpf.c): without them the mesh still balances, enforces and reports flows. */
export const HTTP_VISIBILITY_PROGRAMS = ['ebm_http_egress', 'ebm_http_ingress'];

/** Link pins of the programs attached at the mesh cgroup root. */
function rootLinks(instance: string): string {
  return join(instancePaths(instance).linkPins, 'root');
}

/** Attaches every program at the mesh cgroup root the way the agent does (pinned maps reused, links updated or created). */
export async function attachMesh(instance: string): Promise<void> {
  const { Datapath } = await import('../../src/agent/datapath.js');
  const { cgroup2Root } = await import('../../src/kernel/index.js');
  const p = instancePaths(instance);
  const dp = new Datapath(p);
  dp.load();
  try {
    dp.attach(join(cgroup2Root(), p.cgroupName), 'root');
  } finally {
    dp.close();
  }
}

/**
 * Detaches programs from the mesh cgroup root: those named, or all of them.
 * With all detached the workloads, their network and their placement stay
 * as they were, with no ebmesh program on their path ("no mesh").
 */
export async function detachMesh(instance: string, programs?: readonly string[]): Promise<void> {
  const { detachPinned } = await import('../../src/kernel/index.js');
  const dir = rootLinks(instance);
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) if (!programs || programs.includes(f)) detachPinned(join(dir, f));
}
