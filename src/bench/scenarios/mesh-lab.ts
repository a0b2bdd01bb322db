/**
 * What the mesh scenarios share: the CLI bound to the benchmark's own
 * instance, and the two workloads they measure between (an nginx server
 * answering "ok" on 8080 and an idle client), on the scenario's own
 * address plan so that no benchmark touches another instance's ranges.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../paths.js';

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

export interface BenchMeshOptions {
  serviceCIDR: string;
  podCIDR: string;
  /** nginx worker processes (default 1). */
  workers?: number;
  /** Extra directives for nginx's http block (e.g. keep-alive limits). */
  http?: string;
}

/** Where a workload runs and in which namespace (the multi-node scenarios place them). */
export interface Placement {
  namespace?: string;
  /** A node of a multi-node lab; absent on a single node. */
  node?: string;
}

const nodeLine = (node: string | undefined) => (node ? `\n  node: ${node}` : '');

export function meshConfigYaml(o: Pick<BenchMeshOptions, 'serviceCIDR' | 'podCIDR'>): string {
  return `apiVersion: ebmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {serviceCIDR: ${o.serviceCIDR}, podCIDR: ${o.podCIDR}}
`;
}

/** The nginx server (name server, label app: server, port http 8080) answering "ok". */
export function nginxServerYaml(o: Pick<BenchMeshOptions, 'workers' | 'http'> & Placement = {}): string {
  return `apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: server, namespace: ${o.namespace ?? 'bench'}, labels: {app: server}}
spec:${nodeLine(o.node)}
  ports: [{name: http, containerPort: 8080}]
  files:
    nginx.conf: |
      daemon off; pid nginx.pid; error_log stderr warn; worker_processes ${o.workers ?? 1};
      events { worker_connections 4096; }
      http { access_log off; ${o.http ? `${o.http} ` : ''}client_body_temp_path tmp; proxy_temp_path tmp; fastcgi_temp_path tmp; uwsgi_temp_path tmp; scgi_temp_path tmp;
        server { listen 8080 reuseport backlog=4096; location / { return 200 "ok\\n"; } } }
  command: [nginx, -p, $(EBMESH_WORKDIR), -c, nginx.conf]
`;
}

/** An idle client workload (name client) to run the load generator in. */
export function clientYaml(o: Placement = {}): string {
  return `apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: ${o.namespace ?? 'bench'}, labels: {app: client}}
spec: {${o.node ? `node: ${o.node}, ` : ''}command: [sleep, infinity]}
`;
}

/** MeshConfig, the nginx server (bench/server, port http 8080) and the client (bench/client), as YAML. */
export function benchMesh(o: BenchMeshOptions): string {
  return `${meshConfigYaml(o)}---
${nginxServerYaml(o)}---
${clientYaml()}`;
}
