/**
 * The Kubernetes test cluster (scripts/k8s-lab.sh, docs/kubernetes-lab.md)
 * for tests: whether it can run on this machine, bringing it up, and the
 * built kubectl with the cluster's admin kubeconfig.
 */
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/paths.js';

const run = promisify(execFile);

export const K8S_LAB = join(PACKAGE_ROOT, 'scripts', 'k8s-lab.sh');

/** The cluster's facts, as `k8s-lab.sh env` prints them. */
export interface K8sLabEnv {
  kubeconfig: string;
  apiServerHost: string;
  apiServerPort: number;
  nodeName: string;
  podCidr: string;
  serviceCidr: string;
  /** The IPv6 ranges of the dual-stack cluster. */
  podCidr6: string;
  serviceCidr6: string;
  dnsServiceIp: string;
  clusterDomain: string;
  toolboxImage: string;
  /** The ebmesh agent's instance name on the node (`ebmesh --instance NAME status`). */
  instance: string;
  kubectl: string;
  helm: string;
  buildsCached: boolean;
}

export function k8sLabEnv(): K8sLabEnv {
  const out = execFileSync('bash', [K8S_LAB, 'env'], { encoding: 'utf8' });
  const vars = new Map<string, string>();
  for (const line of out.split('\n')) {
    const m = /^(?:export )?([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) vars.set(m[1]!, m[2]!);
  }
  const get = (k: string): string => {
    const v = vars.get(k);
    if (v === undefined) throw new Error(`k8s-lab.sh env printed no ${k}`);
    return v;
  };
  return {
    kubeconfig: get('KUBECONFIG'),
    apiServerHost: get('K8S_APISERVER_HOST'),
    apiServerPort: Number(get('K8S_APISERVER_PORT')),
    nodeName: get('K8S_NODE_NAME'),
    podCidr: get('K8S_POD_CIDR'),
    serviceCidr: get('K8S_SERVICE_CIDR'),
    podCidr6: get('K8S_POD_CIDR6'),
    serviceCidr6: get('K8S_SERVICE_CIDR6'),
    dnsServiceIp: get('K8S_DNS_SERVICE_IP'),
    clusterDomain: get('K8S_CLUSTER_DOMAIN'),
    toolboxImage: get('K8S_TOOLBOX_IMAGE'),
    instance: get('K8S_EBMESH_INSTANCE'),
    kubectl: get('K8S_KUBECTL'),
    helm: get('K8S_HELM'),
    buildsCached: get('K8S_BUILDS_CACHED') === 'yes',
  };
}

/**
 * Why the cluster cannot run here (a test's skip reason), or false when it
 * can: it needs root, and Go unless every component is already built.
 */
export function k8sLabSkipReason(): string | false {
  if (process.getuid?.() !== 0) return 'the Kubernetes test cluster needs root';
  if (k8sLabEnv().buildsCached) return false;
  const go = spawnSync('go', ['version'], { stdio: 'ignore' });
  if (go.error || go.status !== 0) return 'Go is not installed: the Kubernetes test cluster builds its components from their Go modules';
  return false;
}

/**
 * `k8s-lab.sh up` (idempotent: a running cluster is left as it is); resolves
 * to the admin kubeconfig's path. A cold run builds everything (tens of
 * minutes); a warm one takes about a minute.
 */
export async function k8sLabUp(timeoutMs = 3_600_000): Promise<string> {
  const { stdout } = await run('bash', [K8S_LAB, 'up'], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  const last = stdout.trim().split('\n').pop();
  if (!last) throw new Error('k8s-lab.sh up printed no kubeconfig path');
  return last;
}

export async function k8sLabDown(timeoutMs = 300_000): Promise<void> {
  await run('bash', [K8S_LAB, 'down'], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
}

/**
 * The built kubectl with the admin kubeconfig; `input` goes to its stdin
 * (`apply -f -`). Resolves to its stdout; rejects with its stderr.
 */
export function kubectl(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const env = k8sLabEnv();
  const child = spawn(env.kubectl, ['--kubeconfig', env.kubeconfig, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdin.end(opts.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
  return new Promise((resolve, reject) => {
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`kubectl ${args.join(' ')}: ${signal ? `killed by ${signal}` : `exit ${code}`}\n${err.trim()}`));
    });
  });
}
