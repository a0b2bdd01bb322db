/**
 * How ebmesh reaches a Kubernetes API server: inside the cluster (the pod's
 * service-account token and CA, at an address given explicitly: the agent is
 * the cluster's service proxy, so it must not reach the API server through
 * the `kubernetes` Service VIP it serves itself) or from a kubeconfig (the
 * CLI, tests, an agent run by hand).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { EbmeshError } from '../errors.js';

export interface KubeAccess {
  /** https://HOST:PORT */
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** A bearer token, read anew for each request (projected tokens rotate). */
  token?: () => string;
  /** What to call it in messages. */
  description: string;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The pod's own credentials. `server`: the API server's real address (e.g. from the Helm values); the default is the environment's, which names the Service VIP. */
export function inClusterAccess(server?: string, saDir = SA_DIR): KubeAccess {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT;
  const url = server ?? (host ? `https://${host.includes(':') ? `[${host}]` : host}:${port ?? 443}` : undefined);
  if (!url) throw new EbmeshError('EBMESH_USAGE', 'no API server address: pass --api-server https://HOST:PORT');
  let ca: Buffer;
  try {
    ca = readFileSync(`${saDir}/ca.crt`);
    readFileSync(`${saDir}/token`);
  } catch (e) {
    throw new EbmeshError('EBMESH_USAGE', `no service-account credentials in ${saDir}: ${(e as Error).message}`, { hint: 'outside a pod, pass --kubeconfig FILE' });
  }
  return { server: url, ca, token: () => readFileSync(`${saDir}/token`, 'utf8').trim(), description: `the API server at ${url}` };
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: Array<{ name: string; context: { cluster: string; user: string; namespace?: string } }>;
  clusters?: Array<{ name: string; cluster: { server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string } }>;
  users?: Array<{ name: string; user: { token?: string; tokenFile?: string; 'client-certificate'?: string; 'client-certificate-data'?: string; 'client-key'?: string; 'client-key-data'?: string } }>;
}

/** A kubeconfig file's current (or named) context. Exec and auth-provider plugins are not supported: say so. */
export function kubeconfigAccess(file: string, contextName?: string): KubeAccess {
  let cfg: KubeconfigFile;
  try {
    cfg = parse(readFileSync(file, 'utf8')) as KubeconfigFile;
  } catch (e) {
    throw new EbmeshError('EBMESH_FILE', `cannot read kubeconfig ${file}: ${(e as Error).message}`);
  }
  const name = contextName ?? cfg['current-context'];
  const ctx = cfg.contexts?.find((c) => c.name === name)?.context;
  if (!ctx) throw new EbmeshError('EBMESH_USAGE', `kubeconfig ${file}: no context ${JSON.stringify(name)}`);
  const cluster = cfg.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  const user = cfg.users?.find((u) => u.name === ctx.user)?.user;
  if (!cluster) throw new EbmeshError('EBMESH_USAGE', `kubeconfig ${file}: no cluster ${ctx.cluster}`);
  const base = dirname(resolve(file));
  const fileOrData = (path: string | undefined, data: string | undefined): Buffer | undefined =>
    data ? Buffer.from(data, 'base64') : path ? readFileSync(resolve(base, path)) : undefined;
  const access: KubeAccess = { server: cluster.server, description: `the API server at ${cluster.server} (kubeconfig ${file})` };
  const ca = fileOrData(cluster['certificate-authority'], cluster['certificate-authority-data']);
  if (ca) access.ca = ca;
  const cert = fileOrData(user?.['client-certificate'], user?.['client-certificate-data']);
  const key = fileOrData(user?.['client-key'], user?.['client-key-data']);
  if (cert && key) {
    access.cert = cert;
    access.key = key;
  }
  if (user?.token) {
    const t = user.token;
    access.token = () => t;
  } else if (user?.tokenFile) {
    const f = resolve(base, user.tokenFile);
    access.token = () => readFileSync(f, 'utf8').trim();
  }
  return access;
}
