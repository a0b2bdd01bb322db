/**
 * A multi-node lab's record of what it runs (nodes, etcd, control plane and
 * agent PIDs), on its own: the CLI's read-only commands (observe, top) read
 * it without loading what starts a lab (etcd, the control plane's apply),
 * which took most of every CLI start.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InstancePaths } from '../paths.js';
import { writePrivateFile } from '../host/private-files.js';

export interface ClusterState {
  nodes: string[];
  etcd: { pid: number; clientPort: number; peerPort: number; dataDir: string };
  cpPid?: number;
  agents: Record<string, number>;
  svidTtl: number;
  mesh?: { serviceCIDR: string; podCIDR: string };
}

const clusterFile = (p: InstancePaths) => join(p.stateDir, 'cluster.json');

export function readCluster(p: InstancePaths): ClusterState | undefined {
  try { return JSON.parse(readFileSync(clusterFile(p), 'utf8')) as ClusterState; } catch { return undefined; }
}

export function writeCluster(p: InstancePaths, s: ClusterState): void {
  writePrivateFile(clusterFile(p), JSON.stringify(s, null, 2));
}
