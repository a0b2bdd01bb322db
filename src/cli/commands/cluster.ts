/**
 * The multi-node faces of the CLI: the two processes (`controlplane`,
 * `agent`), `up --nodes N` (a lab of N nodes on this host, store in etcd),
 * its `down`, and `lab stop|start|restart` of one part (for outage drills).
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Command, CommandContext } from '../command.js';
import { instanceClient, isRunning } from '../client.js';
import { meshApi } from '../../api/mesh.js';
import { clusterAdminApi } from '../../api/controlplane.js';
import type { ClusterStatus } from '../../api/status.js';
import { table } from '../table.js';
import { EbmeshError } from '../../errors.js';
import { nodePaths } from '../../paths.js';

const lab = () => import('../../lab/cluster.js');

/**
 * A command that becomes a long-running process: MAIN reads its options
 * from process.argv (as when started alone), and -1 tells the dispatcher
 * not to exit.
 */
function processCommand(name: string, summary: string, usage: string, main: () => Promise<unknown>): Command {
  return {
    name, summary, usage,
    async run(ctx) {
      process.argv.splice(2, process.argv.length, '--instance', ctx.paths.instance, ...ctx.args);
      await main();
      return -1;
    },
  };
}

export const controlplane = processCommand('controlplane',
  'run the control plane of a multi-node mesh (store, API, CA, desired state per node)',
  'controlplane [--store etcd+tls://HOST:PORT[,HOST:PORT…][/PREFIX] --etcd-ca FILE --etcd-cert FILE --etcd-key FILE | file] [--listen ADDR] [--ca-cert FILE --ca-key FILE] [--svid-ttl SECONDS] [--node-cert-ttl SECONDS]\n' +
  '       controlplane --source kubernetes [--namespace NS] [--listen HOST:PORT] [--api-server URL | --kubeconfig FILE] [--trust-domain TD] [--svid-ttl SECONDS] [--node-cert-ttl SECONDS]',
  // In a cluster, desired state comes from the API server: the control plane is the CA alone.
  () => (process.argv.slice(2).some((a, i, all) => a === '--source=kubernetes' || (a === '--source' && all[i + 1] === 'kubernetes'))
    ? import('../../controlplane/cluster-main.js') : import('../../controlplane/main.js')));

export const agent = processCommand('agent', 'run the agent of one node (of a multi-node mesh, or of a Kubernetes cluster)',
  'agent --node NAME --controlplane ADDR [--token-file FILE] [--ca-file FILE] | agent --source kubernetes [--node NAME] [--api-server URL | --kubeconfig FILE]', () => import('../../agent/main.js'));

export function renderClusterStatus(st: ClusterStatus): string {
  const lines = [`mesh ${st.instance}: store ${st.store}, revision ${st.revision}; CA valid until ${st.ca.notAfter}, workload certificates live ${st.ca.svidTtlSeconds}s`];
  const down = (st.storeMembers ?? []).filter((m) => !m.healthy);
  if (down.length) {
    lines.push(`store degraded: ${st.storeMembers!.length - down.length} of ${st.storeMembers!.length} etcd members answer`);
    for (const m of down) lines.push(`  etcd member ${m.endpoint} does not answer: ${m.error ?? 'unhealthy'}`);
  }
  for (const r of st.rejected ?? []) lines.push(`left out of the desired state (fails its check): ${r.key}: ${r.problem}`);
  lines.push('');
  lines.push(table(['NODE', 'POD-SUBNET', 'AGENT', 'LAST-HEARTBEAT', 'APPLIED-REV', 'WORKLOADS', 'CERTS', 'EARLIEST-CERT-EXPIRY', 'ERROR'],
    st.nodes.map((n) => [n.name, n.podSubnet, n.healthy ? 'healthy' : n.lastHeartbeat ? 'STALE' : 'never seen',
      n.heartbeatAgeSeconds === undefined ? '-' : `${n.heartbeatAgeSeconds.toFixed(1)}s ago`,
      n.appliedRevision ?? '-', n.workloads, n.certs, n.earliestCertExpiry ?? '-', n.lastReconcileError ?? n.identityError ?? ''])));
  lines.push('', table(['WORKLOAD', 'NODE', 'IP', 'PHASE', 'READY', 'IDENTITY'],
    st.workloads.map((w) => [`${w.namespace}/${w.name}`, w.node, w.ip, w.phase, w.ready ? 'yes' : 'no', w.identity])));
  lines.push('', table(['SERVICE', 'CLUSTER-IP', 'PORTS', 'ENDPOINTS'],
    st.services.map((s) => [`${s.namespace}/${s.name}`, s.clusterIP, s.ports.join(','), s.endpoints])));
  return lines.join('\n');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `up --nodes N`: etcd, control plane, N nodes; then FILES are applied by the caller. */
export async function upCluster(ctx: CommandContext, n: number, files: string[], applyFiles: (ctx: CommandContext, files: string[]) => Promise<Array<{ resource: string; action: string }>>, svidTtl: number): Promise<void> {
  const L = await lab();
  const p = ctx.paths;
  const prev = L.readCluster(p);
  const nodes = Array.from({ length: n }, (_, i) => `node-${i + 1}`);
  if (prev && prev.nodes.length !== n) throw new EbmeshError('EBMESH_USAGE', `mesh "${p.instance}" already runs ${prev.nodes.length} nodes`, { hint: 'ebmesh down first' });
  const st: import('../../lab/cluster.js').ClusterState = prev ?? { nodes, etcd: { pid: 0, clientPort: 0, peerPort: 0, dataDir: '' }, agents: {}, svidTtl };
  if (!prev || !(await L.etcdUp(p, st))) {
    ctx.err('• starting etcd');
    st.etcd = await L.startEtcdFor(p, prev ?? {});
    L.writeCluster(p, st);
  }
  if (!(await isRunning(p))) {
    ctx.err('• starting the control plane');
    st.cpPid = await L.startControlPlane(p, st, () => isRunning(p));
    L.writeCluster(p, st);
  }
  for (const name of nodes) await registerNode(p, name, L);
  ctx.err(`• applying ${files.join(', ')}`);
  for (const r of await applyFiles(ctx, files)) ctx.err(`  ${r.resource} ${r.action}`);
  const meshItem = (await instanceClient(p).call(meshApi.resources, { kind: 'MeshConfig' })).items[0];
  const mesh = (meshItem?.kind === 'MeshConfig' ? meshItem.spec : undefined)
    ?? { serviceCIDR: '10.96.0.0/16', podCIDR: '10.244.0.0/16' };
  st.mesh = mesh;
  L.writeCluster(p, st);
  L.hostSafety(mesh, true);
  ctx.err(`• ${n} nodes: network namespaces, fabric link, agents`);
  nodes.forEach((_, i) => L.ensureNodeNetwork(p.instance, nodes, i, mesh));
  for (const name of nodes) {
    if (!L.pidAlive(st.agents[name])) st.agents[name] = L.startAgent(p.instance, name);
  }
  L.writeCluster(p, st);
  for (const name of nodes) await waitAgent(p.instance, name, st.agents[name]!, L.pidAlive);
}

/**
 * Registers NODE at the control plane and, unless its agent holds a node
 * certificate it can start with, writes the join token and CA bundle it
 * enrols with. A node that has one gets no token: a token left lying around
 * would enrol whoever finds it as that node.
 */
async function registerNode(p: CommandContext['paths'], name: string, L: Awaited<ReturnType<typeof lab>>): Promise<void> {
  if (!L.needsJoin(p.instance, name)) return;
  const r = await instanceClient(p).call(clusterAdminApi.addNode, { name });
  L.writeJoin(p.instance, name, r.token, r.bundlePem);
}

async function waitAgent(instance: string, node: string, pid: number, alive: (pid: number) => boolean): Promise<void> {
  const np = nodePaths(instance, node);
  const until = Date.now() + 30_000;
  while (!(await isRunning(np))) {
    if (Date.now() > until || !alive(pid)) throw new EbmeshError('EBMESH_START', `the agent of ${node} did not start`, { hint: `see ${np.logFile}` });
    await sleep(50);
  }
}

export async function downCluster(ctx: CommandContext): Promise<boolean> {
  const L = await lab();
  if (!L.readCluster(ctx.paths)) return false;
  const { teardownInstance } = await import('../../agent/node-agent.js');
  await L.teardownCluster(ctx.paths, (np) => teardownInstance(np));
  await teardownInstance(ctx.paths);
  return true;
}

export const labCmd: Command = {
  name: 'lab',
  summary: 'stop, start or restart one part of a multi-node lab: etcd, controlplane, or a node\'s agent',
  usage: 'lab stop|start|restart etcd|controlplane|NODE',
  async run(ctx) {
    const [verb, part] = ctx.args;
    if (!verb || !part || !['stop', 'start', 'restart'].includes(verb)) throw new EbmeshError('EBMESH_USAGE', `usage: ebmesh ${this.usage}`);
    const L = await lab();
    const st = L.readCluster(ctx.paths);
    if (!st) throw new EbmeshError('EBMESH_NOT_RUNNING', `mesh "${ctx.paths.instance}" is not a multi-node lab`, { hint: 'ebmesh up --nodes 3' });
    const stop = verb !== 'start';
    const start = verb !== 'stop';
    if (part === 'etcd') {
      if (stop) await L.stopEtcdFor(st);
      if (start) st.etcd = await L.startEtcdFor(ctx.paths, st);
    } else if (part === 'controlplane') {
      if (stop) await L.stopPid(st.cpPid);
      if (start) st.cpPid = await L.startControlPlane(ctx.paths, st, () => isRunning(ctx.paths));
    } else {
      if (!st.nodes.includes(part)) throw new EbmeshError('EBMESH_NOT_FOUND', `no node ${part} (nodes: ${st.nodes.join(', ')})`);
      if (stop) await L.stopPid(st.agents[part]);
      if (start) {
        await registerNode(ctx.paths, part, L);
        st.agents[part] = L.startAgent(ctx.paths.instance, part);
        await waitAgent(ctx.paths.instance, part, st.agents[part]!, L.pidAlive);
      }
    }
    L.writeCluster(ctx.paths, st);
    ctx.out(`${part}: ${verb} done`);
    return 0;
  },
};

export function nodesOption(ctx: CommandContext): { nodes?: number; svidTtl: number; rest: string[] } {
  const { values } = parseArgs({ args: ctx.args, options: { nodes: { type: 'string' }, 'svid-ttl': { type: 'string', default: '3600' } }, strict: false });
  const rest = ctx.args.filter((a, i, all) => !(a.startsWith('--nodes') || a.startsWith('--svid-ttl') || ((all[i - 1] === '--nodes' || all[i - 1] === '--svid-ttl') && !a.startsWith('-'))));
  const nodes = values.nodes === undefined ? undefined : Number(values.nodes);
  if (nodes !== undefined && (!Number.isInteger(nodes) || nodes < 1 || nodes > 64)) throw new EbmeshError('EBMESH_USAGE', '--nodes: a number of nodes from 1 to 64');
  return { nodes, svidTtl: Number(values['svid-ttl']), rest };
}

export { join };
