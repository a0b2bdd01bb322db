/**
 * `ebmesh agent --node NAME --controlplane ADDR [--token-file F]`: the agent
 * of one node of a multi-node mesh. Its desired state is a mirror of its
 * node's view that the control plane keeps (remote-store.ts); it holds its
 * workloads' identities. Like the single-node daemon, SIGTERM leaves the data
 * path and workloads in place for the next agent to adopt.
 */
import { existsSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { nodePaths, validInstance } from '../paths.js';
import { validNodeName } from '../controlplane/index.js';
import { NodeAgent } from './node-agent.js';
import { nodeHandlers } from './routes.js';
import { RemoteStore } from './remote-store.js';
import { StoreSource } from './store-source.js';
import { IdentityManager } from './identity.js';
import { ApiClient } from '../api/client.js';
import { nodeTransport, parseAddress } from '../api/node-transport.js';
import { serve, startServer } from '../api/server.js';
import { nodeApi } from '../api/node.js';
import { describeError, EbmeshError } from '../errors.js';
import { nodeAddress } from '../lab/cluster.js';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    instance: { type: 'string', default: process.env.EBMESH_INSTANCE ?? 'ebmesh' },
    node: { type: 'string' },
    controlplane: { type: 'string' },
    'token-file': { type: 'string' },
  },
});
const instance = values.instance!;
const nodeName = values.node ?? '';
if (!validInstance(instance) || !validNodeName(nodeName) || !values.controlplane) {
  process.stderr.write('usage: ebmesh agent --node NAME --controlplane ADDR [--token-file FILE]\n');
  process.exit(2);
}
const paths = nodePaths(instance, nodeName);
const token = readFileSync(values['token-file'] ?? join(paths.stateDir, 'token'), 'utf8').trim();
const cp = new ApiClient(nodeTransport(parseAddress(values.controlplane), {
  peer: `the control plane at ${values.controlplane}`,
  unreachable: (code) => new EbmeshError('EBMESH_CP_UNAVAILABLE', `the control plane is unreachable: ${code ?? 'no answer'}`),
  headers: { authorization: `Bearer ${token}` },
}), 30_000);

/**
 * How long a starting agent waits for its first certificate pass before it
 * starts on the data path anyway, and a stopping one for the node SVID's renewal.
 */
const CERT_PASS_WAIT_MS = 5000;
/** P, or nothing once CERT_PASS_WAIT_MS passed: a control plane that does not answer holds up neither start nor stop. */
const certPass = (p: Promise<void> | undefined): Promise<unknown> => Promise.race([p, new Promise((r) => setTimeout(r, CERT_PASS_WAIT_MS).unref())]);

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

let stopping = false;
async function shutdown(code = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  // The next agent starts from a fresh node SVID (IdentityManager.handOver).
  await certPass(identity?.handOver());
  try {
    await agent?.stop(false);
  } catch (e) {
    process.stderr.write(`stopping: ${describeError(e)}\n`);
    code = 1;
  }
  rmSync(paths.pidFile, { force: true });
  process.exit(code);
}

try {
  await remote.start();
  // Certificates before the data path. The node proxy, which outlives
  // agents, serves the node SVID in the tunnel, and only an agent renews it:
  // a restarted agent that loaded its programs and reconciled first (seconds
  // on a busy node) left a due certificate to expire, and every tunnel
  // session a peer opened meanwhile failed its handshake (docs/multinode.md,
  // "Agent restarts and certificates").
  identity = new IdentityManager(join(paths.stateDir, 'svid'), nodeName, cp, () => remote.local, join(paths.stateDir, 'node-svid'));
  await certPass(identity.start());
  const source = new StoreSource(remote, `control plane at ${values.controlplane}`, nodeName, () => remote.nodes);
  agent = new NodeAgent(paths, source, { nodeName, nodeIndex: remote.node!.index, routePodCIDR: true, nodeAddress });
  await agent.start();
  // mTLS: the node proxy runs this node's tunnel endpoint (it outlives
  // agents); it needs the node SVID. When the first pass above did not get
  // one (a new node whose control plane is slow or down), reconcile once it arrives.
  const nodeCert = join(paths.stateDir, 'node-svid', 'cert.pem');
  const svidWait = setInterval(() => {
    if (!existsSync(nodeCert)) return;
    clearInterval(svidWait);
    agent?.schedule();
  }, 250);
  svidWait.unref();
  const tunnelPoll = setInterval(() => void agent?.l7.stats().then((s) => { tunnel = s?.tunnel; }), 1000);
  tunnelPoll.unref();
  mkdirSync(paths.runDir, { recursive: true, mode: 0o700 });
  const ids = identity;
  await startServer({ socketPath: paths.apiSocket }, [
    serve(nodeApi, nodeHandlers(agent, { shutdown: () => void shutdown(), identities: () => ids.list() })),
  ]);
  writeFileSync(paths.pidFile, String(process.pid));
  process.stderr.write(`ebmesh agent ${instance}/${nodeName} ready (pid ${process.pid})\n`);
} catch (e) {
  process.stderr.write(`ebmesh agent ${instance}/${nodeName} failed to start: ${describeError(e)}\n`);
  process.exit(1);
}
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
