/**
 * `ebmesh agent`: the agent of one node, with its desired state from
 *  - a control plane (a multi-node mesh without Kubernetes):
 *      ebmesh agent --node NAME --controlplane ADDR [--token-file F] [--ca-file F]
 *    a mirror of its node's view that the control plane keeps
 *    (remote-store.ts), and its workloads' identities from the mesh CA. It
 *    speaks to the control plane in mutual TLS with its node certificate,
 *    which it gets the first time for its join token (credential.ts);
 *  - a Kubernetes API server (the Helm chart's DaemonSet):
 *      ebmesh agent --source kubernetes [--node NAME] [--api-server URL | --kubeconfig F]
 *        [--service-cidr CIDR[,CIDR6]] [--pod-cidr CIDR[,CIDR6]] [--proxy-name NAME]
 *        [--controlplane-service NAME [--ca-bundle-configmap NAME] [--token-file FILE]]
 *    the cluster's objects, with the mesh as the node's service proxy; with
 *    a control plane Service (in the agent's namespace), its node's and its
 *    pods' certificates, enrolled with the pod's projected token
 *    (kubernetes-identity.ts).
 * SIGTERM leaves the data path and workloads in place for the next agent to
 * adopt.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { instancePaths, nodePaths, validInstance, type InstancePaths } from '../paths.js';
import { validNodeName } from '../controlplane/index.js';
import { NodeAgent } from './node-agent.js';
import { nodeHandlers, type NodeRouteHooks } from './routes.js';
import { RemoteStore } from './remote-store.js';
import { StoreSource } from './store-source.js';
import { KubernetesSource } from './kubernetes-source.js';
import { clusterRanges } from '../k8s/translate.js';
import { IdentityManager } from './identity.js';
import { ApiClient } from '../api/client.js';
import { nodeTransport, parseAddress } from '../api/node-transport.js';
import { serve, startServer } from '../api/server.js';
import { nodeApi } from '../api/node.js';
import { describeError, EbmeshError } from '../errors.js';
import { nodeAddress } from '../lab/cluster.js';
import { cgroup2Root } from '../kernel/index.js';
import { KubeClient } from '../k8s/client.js';
import { inClusterAccess, kubeconfigAccess } from '../k8s/access.js';
import { LeaseElector, StatusWriter } from '../k8s/status-writer.js';
import { joinFiles, NodeCredential } from './credential.js';
import { KubernetesIdentity } from './kubernetes-identity.js';
import { privateDir, writePrivateFile } from '../host/private-files.js';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    instance: { type: 'string', default: process.env.EBMESH_INSTANCE ?? 'ebmesh' },
    source: { type: 'string', default: 'controlplane' },
    node: { type: 'string', default: process.env.NODE_NAME },
    controlplane: { type: 'string' },
    'token-file': { type: 'string' },
    'ca-file': { type: 'string' },
    'api-server': { type: 'string' },
    kubeconfig: { type: 'string' },
    'service-cidr': { type: 'string' },
    'pod-cidr': { type: 'string' },
    'proxy-name': { type: 'string', default: 'ebmesh' },
    'trust-domain': { type: 'string' },
    'controlplane-service': { type: 'string' },
    'ca-bundle-configmap': { type: 'string', default: 'ebmesh-ca-bundle' },
  },
});

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: ebmesh agent --node NAME --controlplane ADDR [--token-file FILE] [--ca-file FILE]\n` +
    '       ebmesh agent --source kubernetes [--node NAME] [--api-server URL | --kubeconfig FILE] [--service-cidr CIDR[,CIDR6]] [--pod-cidr CIDR[,CIDR6]]\n' +
    '         [--controlplane-service NAME [--ca-bundle-configmap NAME] [--token-file FILE]]\n');
  process.exit(2);
}

const instance = values.instance!;
const nodeName = values.node ?? '';
if (!validInstance(instance)) usage(`invalid instance name "${instance}"`);
if (!validNodeName(nodeName)) usage(`--node: "${nodeName}" is not a node name`);

/** What each way of running adds to the common start and stop. */
interface Running {
  paths: InstancePaths;
  agent: NodeAgent;
  hooks: Omit<NodeRouteHooks, 'shutdown'>;
  beforeStop?: () => Promise<unknown>;
}

let running: Running | undefined;
let stopping = false;
async function shutdown(code = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  await running?.beforeStop?.();
  try {
    await running?.agent.stop(false);
  } catch (e) {
    process.stderr.write(`stopping: ${describeError(e)}\n`);
    code = 1;
  }
  if (running) rmSync(running.paths.pidFile, { force: true });
  process.exit(code);
}

/**
 * How long a starting agent waits for its first certificate pass before it
 * starts on the data path anyway, and a stopping one for the node SVID's renewal.
 */
const CERT_PASS_WAIT_MS = 5000;
/** P, or nothing once CERT_PASS_WAIT_MS passed: a control plane that does not answer holds up neither start nor stop. */
const certPass = (p: Promise<void> | undefined): Promise<unknown> => Promise.race([p, new Promise((r) => setTimeout(r, CERT_PASS_WAIT_MS).unref())]);

async function withControlPlane(): Promise<Running> {
  if (!values.controlplane) usage('--controlplane ADDR is needed (or --source kubernetes)');
  const paths = nodePaths(instance, nodeName);
  const cpAddress = parseAddress(values.controlplane);
  const cpPeer = `the control plane at ${values.controlplane}`;
  const credential = new NodeCredential(join(paths.stateDir, 'credential'), nodeName, joinFiles(
    values['token-file'] ?? join(paths.stateDir, 'token'),
    values['ca-file'] ?? join(paths.stateDir, 'ca.pem'),
  ));
  const cp = new ApiClient(nodeTransport({ ...cpAddress, tls: () => credential.tls() }, {
    peer: cpPeer,
    unreachable: (code) => new EbmeshError('EBMESH_CP_UNAVAILABLE', `the control plane is unreachable: ${code ?? 'no answer'}`),
  }), 30_000);
  await credential.ensure(cpAddress, cpPeer);
  credential.startRenewal(cp);
  let agent: NodeAgent | undefined;
  let identity: IdentityManager | undefined;
  /** The tunnel endpoint's status as the node proxy (which runs it) last reported it; the heartbeat reads it. */
  let tunnel: Record<string, unknown> | undefined;
  const remote = new RemoteStore(cp, nodeName, paths.storeFile, () => ({
    pid: process.pid,
    ...(agent?.last ? { appliedRevision: agent.last.revision, lastReconcile: agent.last } : {}),
    ...(identity ? { certs: identity.list() } : {}),
    ...(identity?.lastError ? { identityError: identity.lastError } : {}),
    ...(tunnel ? { tunnel } : {}),
  }));
  await remote.start();
  // Certificates before the data path. The node proxy, which outlives
  // agents, serves the node SVID in the tunnel, and only an agent renews it:
  // a restarted agent that loaded its programs and reconciled first (seconds
  // on a busy node) left a due certificate to expire, and every tunnel
  // session a peer opened meanwhile failed its handshake (docs/multinode.md,
  // "Agent restarts and certificates").
  const ids = new IdentityManager(join(paths.stateDir, 'svid'), nodeName, cp, () => remote.local, join(paths.stateDir, 'node-svid'));
  identity = ids;
  await certPass(ids.start());
  const source = new StoreSource(remote, `control plane at ${values.controlplane}`, nodeName, () => remote.nodes, () => remote.local);
  agent = new NodeAgent(paths, source, { nodeName, nodeIndex: remote.node!.index, routePodCIDR: true, nodeAddress });
  const started = agent;
  await started.start();
  // mTLS: the node proxy runs this node's tunnel endpoint (it outlives
  // agents); it needs the node SVID. When the first pass above did not get
  // one (a new node whose control plane is slow or down), reconcile once it arrives.
  const nodeCert = join(paths.stateDir, 'node-svid', 'cert.pem');
  const svidWait = setInterval(() => {
    if (!existsSync(nodeCert)) return;
    clearInterval(svidWait);
    started.schedule();
  }, 250);
  svidWait.unref();
  setInterval(() => void started.l7.stats().then((s) => { tunnel = s?.tunnel; }), 1000).unref();
  // The next agent starts from a fresh node SVID (IdentityManager.handOver).
  return { paths, agent: started, hooks: { identities: () => ids.list() }, beforeStop: () => { credential.stop(); return certPass(ids.handOver()); } };
}

/** --service-cidr and --pod-cidr, each "V4" or "V4,V6" as the cluster's own flags take them. */
function clusterFlagRanges(): ReturnType<typeof clusterRanges>['ranges'] {
  const { ranges, problems } = clusterRanges({ serviceCIDR: values['service-cidr'], podCIDR: values['pod-cidr'] });
  if (problems.length) usage(problems.join('\n'));
  return ranges;
}

async function inCluster(): Promise<Running> {
  const access = values.kubeconfig ? kubeconfigAccess(values.kubeconfig) : inClusterAccess(values['api-server']);
  if (values['api-server']) access.server = values['api-server'];
  const paths = instancePaths(instance);
  const client = new KubeClient(access);
  const source = new KubernetesSource({
    client,
    nodeName,
    cgroupRoot: cgroup2Root(),
    proxyName: values['proxy-name']!,
    mesh: {
      ...clusterFlagRanges(),
      ...(values['trust-domain'] ? { trustDomain: values['trust-domain'] } : {}),
    },
  });
  await source.start();
  const own = source.nodes().find((n) => n.name === nodeName);
  if (!own) throw new EbmeshError('EBMESH_KUBERNETES', `node ${nodeName} is not in the cluster (${source.nodes().map((n) => n.name).join(', ') || 'no nodes'})`);
  const agent = new NodeAgent(paths, source, {
    nodeName, nodeIndex: own.index, routePodCIDR: false, cluster: true,
    nodeAddress: (i) => source.nodes().find((n) => n.index === i)?.address ?? '',
  });
  await agent.start();
  const namespace = process.env.POD_NAMESPACE ?? podNamespace() ?? 'ebmesh-system';
  // Certificates from the cluster's control plane, when there is one: enrolled with the pod's projected token, in the background.
  let identity: KubernetesIdentity | undefined;
  if (values['controlplane-service']) {
    identity = new KubernetesIdentity({
      client, source, nodeName, stateDir: paths.stateDir, namespace,
      service: values['controlplane-service'], bundleConfigMap: values['ca-bundle-configmap']!,
      tokenFile: values['token-file'] ?? PROJECTED_TOKEN_FILE,
    });
    const ids = identity;
    agent.identityStatus = () => ids.status();
    ids.start();
  }
  // One agent of the cluster writes route status and Events: elected by a Lease in its own namespace.
  const elector = new LeaseElector(client, namespace, 'ebmesh-status', nodeName, () => writer.schedule());
  const writer = new StatusWriter(client, source.statusInputs(), elector);
  source.watch(() => writer.schedule());
  elector.start();
  return {
    paths, agent,
    hooks: identity ? { identities: () => identity.ids.list() } : {},
    beforeStop: async () => { elector.stop(); writer.stop(); await certPass(identity?.stop()); },
  };
}

/** Where the Helm chart projects the agent's service-account token for the control plane (audience ebmesh). */
const PROJECTED_TOKEN_FILE = '/var/run/secrets/ebmesh/token';

/** The pod's namespace, from its service-account mount. */
function podNamespace(): string | undefined {
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

try {
  if (values.source !== 'controlplane' && values.source !== 'kubernetes') usage(`--source: "${values.source}" is neither controlplane nor kubernetes`);
  running = values.source === 'kubernetes' ? await inCluster() : await withControlPlane();
  const { paths, agent, hooks } = running;
  privateDir(paths.runDir);
  await startServer({ socketPath: paths.apiSocket }, [
    serve(nodeApi, nodeHandlers(agent, { ...hooks, shutdown: () => void shutdown() })),
  ]);
  writePrivateFile(paths.pidFile, String(process.pid));
  process.stderr.write(`ebmesh agent ${instance}/${nodeName} ready (pid ${process.pid}, ${agent.source.description})\n`);
} catch (e) {
  process.stderr.write(`ebmesh agent ${instance}/${nodeName} failed to start: ${describeError(e)}\n`);
  process.exit(1);
}
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
