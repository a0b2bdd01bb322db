/**
 * `ebmesh agent --node NAME --controlplane ADDR [--token-file F]`: the agent
 * of one node of a multi-node mesh. It is a NodeDaemon (data path, lab,
 * hosts files) running on a mirror of its node's desired state, plus the
 * node's workload identities. Like the single-node daemon, SIGTERM leaves
 * the data path and workloads in place for the next agent to adopt.
 */
import { existsSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { nodePaths, validInstance } from '../paths.js';
import { validNodeName } from '../controlplane/index.js';
import { NodeDaemon } from './node-agent.js';
import { route, startApi } from '../api/server.js';
import { RemoteStore } from './remote-store.js';
import { CpClient, parseCpAddress } from './cp-client.js';
import { IdentityManager } from './identity.js';
import { describeError } from '../errors.js';
import '../observe/routes.js'; // /v1/flows, /v1/top: `ebmesh observe --node NAME`

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
const cp = new CpClient(parseCpAddress(values.controlplane), token);

/**
 * How long a starting agent waits for its first certificate pass before it
 * starts on the data path anyway, and a stopping one for the node SVID's renewal.
 */
const CERT_PASS_WAIT_MS = 5000;
/** P, or nothing once CERT_PASS_WAIT_MS passed: a control plane that does not answer holds up neither start nor stop. */
const certPass = (p: Promise<void> | undefined): Promise<unknown> => Promise.race([p, new Promise((r) => setTimeout(r, CERT_PASS_WAIT_MS).unref())]);

let node: NodeDaemon | undefined;
let identity: IdentityManager | undefined;
/** The tunnel endpoint's status as the node proxy (which runs it) last reported it; the heartbeat reads it. */
let tunnel: Record<string, unknown> | undefined;
const remote = new RemoteStore(cp, nodeName, paths.storeFile, () => ({
  pid: process.pid,
  appliedRevision: node?.last?.revision,
  lastReconcile: node?.last,
  certs: identity?.list(),
  identityError: identity?.lastError,
  tunnel,
}));

let stopping = false;
async function shutdown(code = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  // The next agent starts from a fresh node SVID (IdentityManager.handOver).
  await certPass(identity?.handOver());
  try {
    await node?.stop(false);
  } catch (e) {
    process.stderr.write(`stopping: ${describeError(e)}\n`);
    code = 1;
  }
  rmSync(paths.pidFile, { force: true });
  process.exit(code);
}
route('POST', '/v1/shutdown', async () => { setImmediate(() => void shutdown()); return { stopping: true }; });
route('GET', '/v1/tunnel', async () => ({ status: (await node?.l7.stats())?.tunnel, recent: node?.l7.recentTunnel ?? [] }));
route('GET', '/v1/identities', async () => ({ items: identity?.list() ?? [] }));

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
  node = new NodeDaemon(paths, nodeName, { store: remote, nodeIndex: remote.node!.index, routePodCIDR: true, nodes: () => remote.nodes });
  await node.start();
  // mTLS: the node proxy runs this node's tunnel endpoint (it outlives
  // agents); it needs the node SVID. When the first pass above did not get
  // one (a new node whose control plane is slow or down), reconcile once it arrives.
  const nodeCert = join(paths.stateDir, 'node-svid', 'cert.pem');
  const svidWait = setInterval(() => {
    if (!existsSync(nodeCert)) return;
    clearInterval(svidWait);
    node?.schedule();
  }, 250);
  svidWait.unref();
  const tunnelPoll = setInterval(() => void node?.l7.stats().then((s) => { tunnel = s?.tunnel; }), 1000);
  tunnelPoll.unref();
  mkdirSync(paths.runDir, { recursive: true });
  await startApi(node, paths.apiSocket);
  writeFileSync(paths.pidFile, String(process.pid));
  process.stderr.write(`ebmesh agent ${instance}/${nodeName} ready (pid ${process.pid})\n`);
} catch (e) {
  process.stderr.write(`ebmesh agent ${instance}/${nodeName} failed to start: ${describeError(e)}\n`);
  process.exit(1);
}
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
