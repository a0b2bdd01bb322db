/**
 * `ebmesh controlplane --source kubernetes`: the control plane of a
 * Kubernetes cluster (the Helm chart's Deployment): the mesh CA, serving
 * the agents' enrolment and certificates (cluster-identity.ts).
 *   --namespace NS          its namespace (default: the pod's)
 *   --listen HOST:PORT      where agents reach it (default 0.0.0.0:15012)
 *   --api-server URL | --kubeconfig F   the API server (in a pod: its service-account credentials)
 *   --trust-domain TD       (default cluster.local)
 *   --agent-service-account NAME   whose tokens enrol (default ebmesh-agent)
 *   --ca-secret NAME --bundle-configmap NAME   (default ebmesh-ca, ebmesh-ca-bundle)
 *   --svid-ttl SECONDS --node-cert-ttl SECONDS
 * It keeps nothing on disk: the CA is in its Secret.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KubeClient } from '../k8s/client.js';
import { inClusterAccess, kubeconfigAccess } from '../k8s/access.js';
import { describeError } from '../errors.js';
import { ClusterIdentity } from './cluster-identity.js';

/** A node certificate's default lifetime in a cluster: an agent enrols again with its token whenever it has none. */
export const CLUSTER_NODE_CERT_TTL_SECONDS = 86_400;
export const CLUSTER_AGENT_PORT = 15012;

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    instance: { type: 'string' },
    source: { type: 'string' },
    namespace: { type: 'string' },
    listen: { type: 'string', default: `0.0.0.0:${CLUSTER_AGENT_PORT}` },
    'api-server': { type: 'string' },
    kubeconfig: { type: 'string' },
    'trust-domain': { type: 'string', default: 'cluster.local' },
    'agent-service-account': { type: 'string', default: 'ebmesh-agent' },
    'ca-secret': { type: 'string', default: 'ebmesh-ca' },
    'bundle-configmap': { type: 'string', default: 'ebmesh-ca-bundle' },
    'svid-ttl': { type: 'string', default: '3600' },
    'node-cert-ttl': { type: 'string', default: String(CLUSTER_NODE_CERT_TTL_SECONDS) },
  },
});

function fail(message: string, code = 2): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function seconds(flag: 'svid-ttl' | 'node-cert-ttl', min: number): number {
  const n = Number(values[flag]);
  if (!Number.isInteger(n) || n < min) fail(`--${flag}: a whole number of seconds, at least ${min}`);
  return n;
}

function podNamespace(): string | undefined {
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

const namespace = values.namespace ?? process.env.POD_NAMESPACE ?? podNamespace();
if (!namespace) fail('--namespace: no namespace given and none from the pod');
let identity: ClusterIdentity;
try {
  const access = values.kubeconfig ? kubeconfigAccess(values.kubeconfig) : inClusterAccess(values['api-server']);
  if (values['api-server']) access.server = values['api-server'];
  identity = new ClusterIdentity({
    client: new KubeClient(access),
    namespace,
    agentServiceAccount: values['agent-service-account']!,
    caSecret: values['ca-secret']!,
    bundleConfigMap: values['bundle-configmap']!,
    trustDomain: values['trust-domain']!,
    listen: values.listen!,
    svidTtlSeconds: seconds('svid-ttl', 2),
    nodeCertTtlSeconds: seconds('node-cert-ttl', 60),
  });
  await identity.start();
  process.stderr.write(`ebmesh control plane (Kubernetes, namespace ${namespace}) ready on ${values.listen} (pid ${process.pid})\n`);
} catch (e) {
  fail(`ebmesh control plane failed to start: ${describeError(e)}`, 1);
}
const stop = () => { identity.stop(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
