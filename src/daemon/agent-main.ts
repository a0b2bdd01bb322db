/**
 * `ebmesh agent --node NAME --controlplane ADDR [--token-file F]`: the agent
 * of one node of a multi-node mesh. It is a NodeDaemon (data path, lab,
 * hosts files) running on a mirror of its node's desired state, plus the
 * node's workload identities. Like the single-node daemon, SIGTERM leaves
 * the data path and workloads in place for the next agent to adopt.
 */
import { readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { nodePaths, validInstance } from '../paths.js';
import { validNodeName } from '../controlplane/index.js';
import { NodeDaemon } from './node.js';
import { route, startApi } from './api.js';
import { RemoteStore } from './remote-store.js';
import { CpClient, parseCpAddress } from './cp-client.js';
import { IdentityManager } from './identity.js';
import { describeError } from '../errors.js';
import { TunnelEndpoint } from '../tunnel/endpoint.js';
import { readSnapshot, wlKey, workloadIp } from '../controlplane/index.js';

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

let node: NodeDaemon | undefined;
let identity: IdentityManager | undefined;
let tunnel: TunnelEndpoint | undefined;
let localIps: ReadonlySet<string> = new Set();
const remote = new RemoteStore(cp, nodeName, paths.storeFile, () => ({
  pid: process.pid,
  appliedRevision: node?.last?.revision,
  lastReconcile: node?.last,
  certs: identity?.list(),
  identityError: identity?.lastError,
  tunnel: tunnel?.status(),
}));

let stopping = false;
async function shutdown(code = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  identity?.stop();
  await tunnel?.stop().catch(() => undefined);
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
route('GET', '/v1/tunnel', async () => ({ status: tunnel?.status(), recent: tunnel?.recent ?? [] }));
route('GET', '/v1/identities', async () => ({ items: identity?.list() ?? [] }));

try {
  await remote.start();
  node = new NodeDaemon(paths, nodeName, { store: remote, nodeIndex: remote.node!.index, routePodCIDR: true });
  await node.start();
  identity = new IdentityManager(join(paths.stateDir, 'svid'), nodeName, cp, () => remote.local, join(paths.stateDir, 'node-svid'));
  identity.start();
  // mTLS: this node's end of the tunnel between node proxies.
  tunnel = new TunnelEndpoint({
    svidDir: join(paths.stateDir, 'node-svid'),
    trustDomain: () => node!.meshConfig.spec.trustDomain,
    localIps: () => localIps,
    // observe: a tunnelled stream is a flow with mtls=true and both identities.
    onFlow: (f) => node?.observer?.recordExternal({
      time: new Date().toISOString(), type: 'close', verdict: f.error ? 'ERROR' : 'FORWARDED', proto: 'TCP', observer: 'server',
      source: { ip: f.sourceIp ?? '', port: 0 }, destination: { ip: f.dst.ip, port: f.dst.port }, cookie: '0',
      bytes: { toDestination: f.bytesIn, toSource: f.bytesOut }, durationMs: f.durationMs, srttUs: 0, retransmits: 0,
      mtls: true, peerIdentity: f.peerId, ...(f.sourceId ? { sourceIdentity: f.sourceId } : {}),
    }),
  });
  const refreshLocal = async () => {
    const snap = await readSnapshot(remote);
    const mine = new Set(remote.local);
    localIps = new Set(snap.workloads.filter((w) => mine.has(wlKey(w))).map((w) => workloadIp(snap, w)).filter((ip): ip is string => !!ip));
  };
  await refreshLocal();
  setInterval(() => void refreshLocal().catch(() => undefined), 1000).unref();
  tunnel.start();
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
