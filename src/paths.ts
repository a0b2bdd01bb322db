/**
 * Every path and name a node instance uses on the host, derived from the
 * instance name in one place, so that parallel instances (tests) never
 * collide and `down` can find everything an instance made, even after a
 * crash.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BPF_BUILD = join(PACKAGE_ROOT, 'bpf', 'build');

function short(s: string, n: number): string {
  return createHash('sha256').update(s).digest('hex').slice(0, n);
}

export function validInstance(name: string): boolean {
  return /^[a-z][a-z0-9-]{0,30}$/.test(name);
}

export interface InstancePaths {
  instance: string;
  stateDir: string;
  storeFile: string;
  runDir: string;
  apiSocket: string;
  pidFile: string;
  logFile: string;
  bpfRoot: string; // under /sys/fs/bpf
  mapPins: string;
  linkPins: string;
  cgroupName: string; // below the cgroup v2 root
  /**
   * The node proxy's cgroup, beside the mesh's and never inside it (the mesh
   * cgroup's programs would load-balance and judge the proxy's own sockets).
   * "_" keeps it apart from every node's name (DNS labels never hold it).
   */
  proxyCgroupName: string;
  bridge: string;
  netnsPrefix: string;
}

export function instancePaths(instance: string): InstancePaths {
  const stateDir = `/var/lib/ebmesh/${instance}`;
  const runDir = `/run/ebmesh/${instance}`;
  const bpfRoot = `/sys/fs/bpf/ebmesh/${instance}`;
  return {
    instance,
    stateDir,
    storeFile: join(stateDir, 'store.json'),
    runDir,
    apiSocket: join(runDir, 'api.sock'),
    pidFile: join(runDir, 'daemon.pid'),
    logFile: join(stateDir, 'daemon.log'),
    bpfRoot,
    mapPins: join(bpfRoot, 'maps'),
    linkPins: join(bpfRoot, 'links'),
    cgroupName: `ebmesh.${instance}`,
    proxyCgroupName: `ebmesh.${instance}_proxy`,
    bridge: instance === 'ebmesh' ? 'ebmesh0' : `eb${short(instance, 8)}br`,
    netnsPrefix: `ebm-${instance}-`,
  };
}

/** Interface names are at most 15 bytes: hash what identifies the veth. */
export function vethName(instance: string, workload: string): string {
  return `ebv${short(`${instance}/${workload}`, 10)}`;
}

export function netnsName(p: InstancePaths, namespace: string, name: string): string {
  return `${p.netnsPrefix}${namespace}.${name}`;
}

/**
 * A node of a multi-node mesh: the agent's own state, pins, cgroup, bridge
 * and workload namespaces, nested under the mesh instance so that `down`
 * finds them all. The bridge lives in the node's network namespace.
 */
export function nodePaths(instance: string, node: string): InstancePaths {
  const base = instancePaths(instance);
  const id = `${instance}-${node}`;
  const stateDir = join(base.stateDir, 'nodes', node);
  const runDir = join(base.runDir, 'nodes', node);
  const bpfRoot = join(base.bpfRoot, 'nodes', node);
  return {
    instance: id,
    stateDir,
    storeFile: join(stateDir, 'desired.json'),
    runDir,
    apiSocket: join(runDir, 'api.sock'),
    pidFile: join(runDir, 'agent.pid'),
    logFile: join(stateDir, 'agent.log'),
    bpfRoot,
    mapPins: join(bpfRoot, 'maps'),
    linkPins: join(bpfRoot, 'links'),
    cgroupName: `ebmesh.${instance}.${node}`,
    proxyCgroupName: `ebmesh.${instance}.${node}_proxy`,
    bridge: `eb${short(id, 8)}nb`,
    netnsPrefix: `ebm-${id}-`,
  };
}

/** The network namespace of a lab node (its agent, bridge and routes live there). */
export function nodeNetns(instance: string, node: string): string {
  return `ebn-${instance}-${node}`;
}
