/**
 * Runs the lab's workloads: each Workload with a `command` becomes a process
 * group in its own network namespace and cgroup under the mesh's cgroup.
 * Processes are started detached, so they outlive the agent; a restarted
 * agent finds them again through the status it recorded and their cgroups.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { closeSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkloadResource, ServiceResource } from '../resources/index.js';
import type { WorkloadStatus } from '../controlplane/index.js';
import { serviceVips, wlKey } from '../controlplane/index.js';
import type { Cidr } from '../net/ipam.js';
import { netnsName, vethName, type InstancePaths } from '../paths.js';
import { createWorkloadNet, deleteWorkloadNet, writeHostsFile } from '../host/network.js';
import { cgroupPopulated, ensureCgroup, inCgroup, killCgroup, removeCgroupTree } from '../host/cgroup.js';
import { openPrivateLog, privateDir, writePrivateFile } from '../host/private-files.js';

interface Running {
  key: string;
  sig: string;
  pid: number;
  netns: string;
  veth: string;
  cgroup: string;
  watch?: NodeJS.Timeout;
  stopping?: boolean;
}

/** The readiness probe's period while a process is young, how long it is young, and the period after. */
const PROBE_FAST_MS = 10;
const PROBE_FAST_FOR_MS = 5000;
const PROBE_SLOW_MS = 500;

export type StatusSink = (namespace: string, name: string, status: WorkloadStatus | undefined) => void;

/** Where the lab's workloads are wired, as the node's plan says now. */
export interface LabNetwork {
  /** The node's pod subnet, and its IPv6 one on a dual-stack mesh. */
  subnet: Cidr;
  subnet6?: Cidr;
  /** The mesh's ranges, unreachable in every workload namespace. */
  unreachable: string[];
  /** Multi-node: the whole pod CIDR, routed through the node. */
  podCIDR?: string;
}

export function specSignature(w: WorkloadResource): string {
  const { command, env, files, ip, ipv6, ports } = w.spec;
  // Without an IPv6 address the signature is what it always was: workloads of an IPv4 mesh are not restarted.
  return createHash('sha256').update(JSON.stringify({ command, env, files, ip, ports, ...(ipv6 ? { ipv6 } : {}) })).digest('hex').slice(0, 16);
}

/** Kubernetes-style $(VAR) expansion; $$(VAR) stays literal. */
export function expandVars(arg: string, env: Record<string, string>): string {
  return arg.replace(/\$\$\(|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) =>
    name === undefined ? '$(' : env[name] ?? m,
  );
}

/** The cgroup a lab workload runs in: one per workload under the mesh cgroup. */
export function labCgroupOf(meshCgroup: string, w: { metadata: { namespace: string; name: string } }): string {
  return join(meshCgroup, 'workloads', `${w.metadata.namespace}.${w.metadata.name}`);
}

export class Lab {
  private running = new Map<string, Running>();
  /** Called once a workload's cgroup exists and before any process joins it. */
  onCgroup: ((w: WorkloadResource, cgroup: string) => void) | undefined;

  constructor(
    private readonly paths: InstancePaths,
    private readonly meshCgroup: string,
    private readonly network: () => LabNetwork,
    private readonly report: StatusSink,
  ) {}

  /** The cgroup a lab workload runs in. */
  cgroupOf(w: { metadata: { namespace: string; name: string } }): string {
    return labCgroupOf(this.meshCgroup, w);
  }

  workloadDir(w: { metadata: { namespace: string; name: string } }): string {
    return join(this.paths.stateDir, 'workloads', w.metadata.namespace, w.metadata.name);
  }

  /**
   * Re-adopts processes recorded in the store that are still alive. Where
   * they live is computed from the workload's name, never taken from the
   * recorded status: a status names a cgroup and a namespace that stop() kills
   * and deletes, and a status is only as trustworthy as the store.
   */
  restore(workloads: WorkloadResource[], statuses: Map<string, WorkloadStatus>): void {
    for (const w of workloads) {
      if (!w.spec.command) continue;
      const key = wlKey(w);
      const st = statuses.get(key);
      const cgroup = this.cgroupOf(w);
      if (!st?.pid || !cgroupPopulated(cgroup)) continue;
      const netns = netnsName(this.paths, w.metadata.namespace, w.metadata.name);
      const r: Running = { key, sig: st.sig ?? '', pid: st.pid, netns, veth: vethName(this.paths.instance, key), cgroup };
      this.running.set(key, r);
      this.watchCgroup(w, r);
    }
  }

  running_(): ReadonlyMap<string, Running> {
    return this.running;
  }

  /** Brings the running set in line with the workloads: start, restart, stop. */
  async sync(workloads: WorkloadResource[]): Promise<void> {
    const want = new Map(workloads.filter((w) => w.spec.command).map((w) => [wlKey(w), w]));
    for (const [key, r] of this.running) {
      const w = want.get(key);
      if (!w) await this.stop(key, true);
      else if (r.sig !== specSignature(w)) await this.stop(key, false);
    }
    for (const [key, w] of want) {
      if (!this.running.has(key)) await this.start(w);
    }
  }

  private async start(w: WorkloadResource): Promise<void> {
    const key = wlKey(w);
    const { namespace, name } = w.metadata;
    const ip = w.spec.ip!;
    const netns = netnsName(this.paths, namespace, name);
    const veth = vethName(this.paths.instance, key);
    const cgroup = this.cgroupOf(w);
    const dir = this.workloadDir(w);
    const sig = specSignature(w);
    try {
      const net = this.network();
      const ip6 = w.spec.ipv6 && net.subnet6 ? { ip: w.spec.ipv6, subnet: net.subnet6 } : undefined;
      createWorkloadNet({
        netns, veth, ip, subnet: net.subnet, bridge: this.paths.bridge, unreachable: net.unreachable,
        ...(ip6 ? { ip6 } : {}), ...(net.podCIDR ? { podCIDR: net.podCIDR } : {}),
      });
      ensureCgroup(cgroup);
      this.onCgroup?.(w, cgroup);
      privateDir(dir);
      for (const [file, content] of Object.entries(w.spec.files ?? {})) writePrivateFile(join(dir, file), content);
    } catch (e) {
      this.report(namespace, name, { phase: 'Failed', ip, message: (e as Error).message });
      return;
    }
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: dir,
      EBMESH_WORKLOAD: name,
      EBMESH_NAMESPACE: namespace,
      EBMESH_POD_IP: ip,
      ...(w.spec.ipv6 ? { EBMESH_POD_IPV6: w.spec.ipv6 } : {}),
      EBMESH_WORKDIR: dir,
      ...w.spec.env,
    };
    const argv = w.spec.command!.map((a) => expandVars(a, env));
    const log = openPrivateLog(join(dir, 'output.log'));
    const child = spawn(...inCgroup(cgroup, ['ip', 'netns', 'exec', netns, ...argv]), { cwd: dir, env, detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.unref();
    const pid = child.pid ?? 0;
    const r: Running = { key, sig, pid, netns, veth, cgroup };
    this.running.set(key, r);
    const base: WorkloadStatus = { phase: 'Running', ip, pid, netns, cgroup, startedAt: new Date().toISOString(), sig, ready: false };
    this.report(namespace, name, base);
    child.on('exit', (code, signal) => this.exited(w, r, code, signal));
    child.on('error', (e) => this.report(namespace, name, { phase: 'Failed', ip, message: e.message }));
    this.probeReady(w, r).then((ok) => {
      if (this.running.get(key) === r && ok) this.report(namespace, name, { ...base, ready: true });
    }, () => undefined);
  }

  private exited(w: WorkloadResource, r: Running, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.running.get(r.key) !== r || r.stopping) return;
    this.running.delete(r.key);
    if (r.watch) clearInterval(r.watch);
    const message = signal ? `killed by ${signal}` : `exited with code ${code}`;
    this.report(w.metadata.namespace, w.metadata.name, { phase: code === 0 ? 'Succeeded' : 'Failed', ip: w.spec.ip, message });
  }

  /** For processes we did not spawn (re-adopted after a restart). */
  private watchCgroup(w: WorkloadResource, r: Running): void {
    r.watch = setInterval(() => {
      if (!cgroupPopulated(r.cgroup)) this.exited(w, r, null, 'SIGKILL');
    }, 200);
    r.watch.unref();
  }

  /**
   * Ready once the first TCP port accepts (from the node), or at once without
   * one. Probed for as long as the process runs, as a readiness probe is: a
   * slow start (a busy node) delays readiness, it never ends it.
   *
   * Every PROBE_FAST_MS while the process is young: the time between its
   * listen() and the probe that sees it is time a scaled-out backend idles
   * outside the load balancer (a doubling backoff made a 400 ms start cost
   * up to 800 ms more). A refused connect to a netns address costs the node
   * a few microseconds. A process still not listening after PROBE_FAST_FOR_MS
   * is slow to start anyway: probed every PROBE_SLOW_MS from then on.
   */
  private async probeReady(w: WorkloadResource, r: Running): Promise<boolean> {
    const port = w.spec.ports.find((p) => p.protocol === 'TCP')?.containerPort;
    if (!port) return true;
    const since = Date.now();
    while (this.running.get(r.key) === r) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = connect({ host: w.spec.ip!, port, timeout: 500 });
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
        s.once('timeout', () => { s.destroy(); resolve(false); });
      });
      if (ok) return true;
      await new Promise((res) => setTimeout(res, Date.now() - since < PROBE_FAST_FOR_MS ? PROBE_FAST_MS : PROBE_SLOW_MS));
    }
    return false;
  }

  async stop(key: string, forget: boolean): Promise<void> {
    const r = this.running.get(key);
    if (!r) return;
    r.stopping = true;
    if (r.watch) clearInterval(r.watch);
    this.running.delete(key);
    await killCgroup(r.cgroup);
    // A workload started again keeps its cgroup, so its id (and the policy
    // endpoint keyed by it) stays valid across the restart.
    if (forget) removeCgroupTree(r.cgroup);
    if (forget) {
      deleteWorkloadNet(r.netns, r.veth);
      const [ns = '', name = ''] = key.split('/');
      rmSync(join(this.paths.stateDir, 'workloads', ns, name), { recursive: true, force: true });
      this.report(ns, name, undefined);
    }
  }

  /**
   * The hosts file of every lab workload: services by NAME.NAMESPACE[.svc.cluster.local],
   * a line per VIP (a dual-stack Service has one of each family: resolvers
   * hand AF_INET6 clients the IPv6 one, and `curl -6` asks for it).
   */
  writeHosts(workloads: WorkloadResource[], services: ServiceResource[], domain: string): void {
    for (const w of workloads) {
      if (!w.spec.command) continue;
      const lines = ['127.0.0.1 localhost', ...(w.spec.ipv6 ? ['::1 localhost ip6-localhost ip6-loopback'] : []), `${w.spec.ip} ${w.metadata.name}`];
      if (w.spec.ipv6) lines.push(`${w.spec.ipv6} ${w.metadata.name}`);
      for (const s of services) {
        const { name, namespace } = s.metadata;
        const names = [`${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.${domain}`];
        if (namespace === w.metadata.namespace) names.unshift(name);
        for (const { vip } of serviceVips(s)) lines.push(`${vip} ${names.join(' ')}`);
      }
      writeHostsFile(netnsName(this.paths, w.metadata.namespace, w.metadata.name), lines);
    }
  }

  async stopAll(): Promise<void> {
    for (const key of [...this.running.keys()]) await this.stop(key, true);
  }
}
