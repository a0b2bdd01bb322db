/**
 * A multi-node mesh on one machine, for the demo, tests and benchmarks:
 * etcd on 127.0.0.1, the control plane in the host namespace, and per node a
 * network namespace with its agent, its bridge and its workloads. Nodes are
 * joined by a "fabric" bridge in a namespace of its own (node addresses
 * 172.31.0.N/24, all inside namespaces made here); each node routes the
 * other nodes' pod /24s to them, and has unreachable routes for the service
 * and pod CIDRs, so nothing meant for the mesh leaves it.
 *
 * Every channel is authenticated as in production: etcd speaks TLS and asks
 * the control plane for its client certificate (store/etcd-pki.ts), and
 * each agent talks to the control plane in mutual TLS over the agents'
 * socket with its node certificate, which it gets the first time for the
 * join token the lab asks the control plane for (writeJoin).
 *
 * Agents run in their node's namespace through nsenter --net, not
 * `ip netns exec`: the latter also gives the process a private mount
 * namespace, so the workload namespaces the agent names with `ip netns add`
 * would be seen by it alone and vanish with it.
 */
import { formatCidr } from '../net/ipam.js';
import { spawn } from 'node:child_process';
import { closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT, instancePaths, nodeNetns, nodePaths, type InstancePaths } from '../paths.js';
import { startEtcd, stopEtcd, healthy as etcdHealthy } from '../store/etcd-server.js';
import { ensureEtcdPki, type EtcdTlsFiles } from '../store/etcd-pki.js';
import { ensureUnreachable, linkExists, netnsExists, removeUnreachable } from '../host/network.js';
import { run } from './run.js';
import { nodePodSubnet } from '../controlplane/apply.js';
import type { MeshConfigResource } from '../resources/index.js';
import { EbmeshError } from '../errors.js';
import { readCluster, writeCluster, type ClusterState } from './cluster-state.js';
import { pidAlive, stopPid as stopProcess } from '../host/pids.js';
import { openPrivateLog, privateDir, writePrivateFile } from '../host/private-files.js';

export { pidAlive, readCluster, writeCluster, type ClusterState };


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const fabricNetns = (instance: string) => `ebn-${instance}-fabric`;
export const nodeAddress = (index: number) => `172.31.0.${index + 1}`;
export const agentsSocket = (p: InstancePaths) => join(p.runDir, 'agents.sock');

function cli(args: string[], logFile: string, netns?: string): number {
  const log = openPrivateLog(logFile);
  const argv = [process.execPath, join(PACKAGE_ROOT, 'dist/src/cli/main.js'), ...args];
  const cmd = netns ? ['nsenter', `--net=/var/run/netns/${netns}`, '--', ...argv] : argv;
  const child = spawn(cmd[0]!, cmd.slice(1), { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  return child.pid!;
}

const etcdPkiDir = (p: InstancePaths) => join(p.stateDir, 'etcd', 'pki');

/** The lab's etcd's certificates: the member's, and the control plane's as its client. */
export function etcdPki(p: InstancePaths) {
  return ensureEtcdPki(etcdPkiDir(p));
}

export async function startEtcdFor(p: InstancePaths, st: Partial<ClusterState>): Promise<ClusterState['etcd']> {
  const e = await startEtcd({ dataDir: st.etcd?.dataDir ?? join(p.stateDir, 'etcd', 'data'), pkiDir: etcdPkiDir(p), clientPort: st.etcd?.clientPort, peerPort: st.etcd?.peerPort, detached: true });
  return { pid: e.pid, clientPort: e.clientPort, peerPort: e.peerPort, dataDir: e.dataDir };
}

/** The lab's etcd answers its health check (in TLS, as the control plane). */
export async function etcdUp(p: InstancePaths, st: ClusterState): Promise<boolean> {
  if (!st.etcd.clientPort) return false;
  return etcdHealthy(`https://127.0.0.1:${st.etcd.clientPort}`, (await etcdPki(p)).client);
}

export async function stopEtcdFor(st: ClusterState): Promise<void> {
  await stopEtcd(st.etcd.pid);
}

export async function startControlPlane(p: InstancePaths, st: ClusterState, ready: () => Promise<boolean>): Promise<number> {
  const tls: EtcdTlsFiles = (await etcdPki(p)).client;
  const pid = cli(['--instance', p.instance, 'controlplane', '--store', `etcd+tls://127.0.0.1:${st.etcd.clientPort}`,
    '--etcd-ca', tls.ca, '--etcd-cert', tls.cert, '--etcd-key', tls.key, '--svid-ttl', String(st.svidTtl)],
  join(p.stateDir, 'controlplane.log'));
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    if (!pidAlive(pid)) throw new EbmeshError('EBMESH_START', 'the control plane exited', { hint: `see ${join(p.stateDir, 'controlplane.log')}` });
    if (await ready()) return pid;
    await sleep(100);
  }
  throw new EbmeshError('EBMESH_START', 'the control plane did not become ready in 30 s');
}

export async function stopPid(pid: number | undefined): Promise<void> {
  await stopProcess(pid, 15_000);
}

/** The node's namespace, its link to the fabric, its routes. Idempotent. */
export function ensureNodeNetwork(instance: string, nodes: string[], index: number, mesh: { serviceCIDR: string; podCIDR: string }): void {
  const fab = fabricNetns(instance);
  if (!netnsExists(fab)) {
    run('ip', ['netns', 'add', fab]);
    run('ip', ['-n', fab, 'link', 'add', 'fabric', 'type', 'bridge']);
    run('ip', ['-n', fab, 'link', 'set', 'fabric', 'up']);
    run('ip', ['-n', fab, 'link', 'set', 'lo', 'up']);
  }
  const name = nodes[index]!;
  const ns = nodeNetns(instance, name);
  const port = `n${index}`;
  if (!netnsExists(ns)) run('ip', ['netns', 'add', ns]);
  if (!linkExists('eth0', ns)) {
    run('ip', ['-n', fab, 'link', 'del', port], { allowFail: /Cannot find|does not exist/ });
    run('ip', ['-n', fab, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    run('ip', ['-n', fab, 'link', 'set', port, 'master', 'fabric', 'up']);
  }
  run('ip', ['-n', ns, 'addr', 'replace', `${nodeAddress(index)}/24`, 'dev', 'eth0']);
  run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  const meshCfg = { spec: mesh } as MeshConfigResource;
  nodes.forEach((_, j) => {
    if (j !== index) run('ip', ['-n', ns, 'route', 'replace', formatCidr(nodePodSubnet(meshCfg, j)), 'via', nodeAddress(j)]);
  });
  ensureUnreachable(mesh.serviceCIDR, ns);
  ensureUnreachable(mesh.podCIDR, ns);
}

const joinFiles = (np: InstancePaths) => ({ token: join(np.stateDir, 'token'), ca: join(np.stateDir, 'ca.pem') });

export function startAgent(instance: string, node: string): number {
  const p = instancePaths(instance);
  const np = nodePaths(instance, node);
  privateDir(np.stateDir);
  const j = joinFiles(np);
  return cli(['--instance', instance, 'agent', '--node', node, '--controlplane', `unix:${agentsSocket(p)}`, '--token-file', j.token, '--ca-file', j.ca],
    np.logFile, nodeNetns(instance, node));
}

/** Where a lab node's agent keeps its node certificate (agent/credential.ts). */
export const credentialDir = (instance: string, node: string) => join(nodePaths(instance, node).stateDir, 'credential');

/** The node's agent has no node certificate it could start with: it needs a join token. */
export function needsJoin(instance: string, node: string): boolean {
  try {
    const meta = JSON.parse(readFileSync(join(credentialDir(instance, node), 'credential.json'), 'utf8')) as { notAfter: string };
    return Date.parse(meta.notAfter) - Date.now() < 5 * 60_000;
  } catch {
    return true;
  }
}

/** What the node's agent enrols with: its one-use join token and the CA bundle to trust meanwhile. */
export function writeJoin(instance: string, node: string, token: string, bundlePem: string): void {
  const j = joinFiles(nodePaths(instance, node));
  writePrivateFile(j.ca, bundlePem);
  writePrivateFile(j.token, token);
}

/** The host's safety routes while the lab runs (nothing in the host may reach the mesh's ranges). */
export function hostSafety(mesh: { serviceCIDR: string; podCIDR: string }, on: boolean): void {
  for (const c of [mesh.serviceCIDR, mesh.podCIDR]) (on ? ensureUnreachable : removeUnreachable)(c);
}

/** Everything a lab made, from its state file and names: works after a crash too. */
export async function teardownCluster(p: InstancePaths, teardownNode: (np: InstancePaths) => Promise<void>): Promise<void> {
  const st = readCluster(p);
  if (st) {
    for (const pid of Object.values(st.agents)) await stopPid(pid);
    await stopPid(st.cpPid);
    await stopEtcd(st.etcd.pid);
    for (const n of st.nodes) {
      await teardownNode(nodePaths(p.instance, n));
      run('ip', ['netns', 'del', nodeNetns(p.instance, n)], { allowFail: /No such file|not found|Cannot remove/i });
    }
    if (st.mesh) hostSafety(st.mesh, false);
  }
  run('ip', ['netns', 'del', fabricNetns(p.instance)], { allowFail: /No such file|not found|Cannot remove/i });
}
