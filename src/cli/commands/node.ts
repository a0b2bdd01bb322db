import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { instanceClient, isRunning } from '../client.js';
import { meshApi } from '../../api/mesh.js';
import type { NodeStatus, Status } from '../../api/status.js';
import { table } from '../table.js';
import { applyFiles } from './resources.js';
import { EbmeshError } from '../../errors.js';
import { PACKAGE_ROOT } from '../../paths.js';
// The kernel bindings and the daemon load only for the commands that use
// them, so that every other command starts fast.
const requireFeatures = async () => (await import('../../kernel/features.js')).requireFeatures();
const teardownInstance = async (...a: Parameters<typeof import('../../agent/node-agent.js').teardownInstance>) =>
  (await import('../../agent/node-agent.js')).teardownInstance(...a);
import type { Command, CommandContext } from '../command.js';
import { downCluster, nodesOption, renderClusterStatus, upCluster } from './cluster.js';
import { pidAlive } from '../../host/pids.js';
import { inWorkload } from '../../host/cgroup.js';
import { openPrivateLog, privateDir } from '../../host/private-files.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function progress(ctx: CommandContext, msg: string): void {
  ctx.err(`• ${msg}`);
}

async function startDaemon(ctx: CommandContext): Promise<void> {
  const { paths } = ctx;
  privateDir(paths.stateDir);
  const log = openPrivateLog(paths.logFile);
  const child = spawn(process.execPath, ['--expose-gc', join(PACKAGE_ROOT, 'dist/src/node/main.js'), '--instance', paths.instance], {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, EBMESH_INSTANCE: paths.instance },
  });
  closeSync(log);
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? 1));
  child.unref();
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    if (exited !== null) {
      const tail = readFileSync(paths.logFile, 'utf8').trim().split('\n').slice(-5).join('\n');
      throw new EbmeshError('EBMESH_START', `the node daemon exited (${exited}):\n${tail}`, { hint: `full log: ${paths.logFile}` });
    }
    if (await isRunning(paths)) return;
    await sleep(100);
  }
  throw new EbmeshError('EBMESH_START', 'the node daemon did not become ready in 30 s', { hint: `see ${paths.logFile}` });
}

async function waitReady(ctx: CommandContext, timeoutMs: number): Promise<Status> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const st = await instanceClient(ctx.paths).call(meshApi.status, {});
    const waiting = st.workloads.filter((w) => !w.ready && w.phase !== 'Failed' && w.phase !== 'Succeeded');
    if (!waiting.length) return st;
    if (Date.now() > until) {
      throw new EbmeshError('EBMESH_NOT_READY', `workloads not ready after ${timeoutMs / 1000}s: ${waiting.map((w) => `${w.namespace}/${w.name}`).join(', ')}`);
    }
    await sleep(100);
  }
}

export function renderStatus(st: NodeStatus): string {
  const lines = [
    `node ${st.node} (instance ${st.instance}, daemon pid ${st.pid}), store revision ${st.revision}` +
      (st.lastReconcile ? `, reconciled at revision ${st.lastReconcile.revision}` : ''),
  ];
  if (st.lastReconcile?.error) lines.push(`last reconcile FAILED: ${st.lastReconcile.error}`);
  for (const r of st.rejected ?? []) lines.push(`left out of the desired state (fails its check): ${r.key}: ${r.problem}`);
  lines.push(`programs attached to: ${st.datapath.attached.join(', ') || 'nothing'}`);
  lines.push(`maps: ${st.datapath.maps.map((m) => `${m.map} ${m.entries}/${m.max}`).join(', ')}`);
  lines.push(`counters: ${Object.entries(st.datapath.counters).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  const c = st.datapath.counters;
  if (st.mesh && 'sameNodeShortcut' in st.mesh) {
    lines.push(`same-node shortcut: ${st.mesh.sameNodeShortcut ? 'on' : 'off'}; sockets in ${c.sc_inserted ?? 0}, closed ${c.sc_removed ?? 0}, ` +
      `refused (map full) ${c.sc_map_full ?? 0}; writes redirected ${c.sc_redirected ?? 0} (${c.sc_redirected_bytes ?? 0} bytes), ` +
      `normal path ${c.sc_normal ?? 0}, backpressure ${c.sc_backpressure ?? 0}`);
  }
  lines.push('', table(['WORKLOAD', 'IP', 'PHASE', 'READY', 'MESSAGE'],
    st.workloads.map((w) => [`${w.namespace}/${w.name}`, w.ip, w.phase, w.ready ? 'yes' : 'no', w.message])));
  lines.push('', table(['SERVICE', 'CLUSTER-IP', 'PORTS', 'ENDPOINTS'],
    st.services.map((s) => [`${s.namespace}/${s.name}`, s.clusterIP, s.ports.join(','), s.endpoints])));
  const id = st.identity;
  if (id) {
    lines.push('', `identity: ${id.nodeCertExpiry ? `node certificate valid until ${id.nodeCertExpiry}` : 'NO node certificate yet'} from ${id.controlPlane}` +
      (id.error ? `; last error: ${id.error}` : ''));
    if (id.svids.length) {
      lines.push(table(['SVID OF', 'SPIFFE-ID', 'VALID-UNTIL', 'RENEWALS'], id.svids.map((v) => [v.workload, v.spiffeId, v.notAfter, v.renewals])));
    }
  }
  const px = st.proxy;
  if (px) {
    // The node proxy (issue 6): where it listens, what is steered to it, what it did.
    lines.push('', `node proxy: ${px.ready ? 'ready' : 'NOT READY'} on ${px.listen ?? '?'} (pid ${px.pid ?? '-'}, ${px.stats?.workers ?? 0} workers, started ${px.starts}×), ` +
      `${px.stats?.connections ?? 0} connections, ${px.stats?.requests ?? 0} requests; steered: ${px.steered.join(', ') || 'nothing'}`);
    // Handovers (ebmesh proxy restart, or an agent of another build): the last one, and who still drains.
    const h = px.lastHandover;
    if (h) lines.push(`last handover ${h.at}: pid ${h.from.pid} -> ${h.to.pid} after ${h.readyMs} ms; ` + (h.drainedMs === undefined ? 'draining' : `drained in ${h.drainedMs} ms, ${h.cut} cut`));
    for (const d of px.draining ?? []) lines.push(`draining since ${d.since}: pid ${d.pid} on port ${d.port}`);
    const answers = Object.entries(px.stats?.responses ?? {}).map(([k, v]) => `${k}=${v}`).join(' ');
    if (answers) lines.push(`proxy answers: ${answers}`);
    if (px.byRoute.length) {
      lines.push('', table(['SERVICE', 'ROUTE', 'BACKEND', 'CODE', 'REQUESTS', 'RETRIES'],
        px.byRoute.map((r) => [r.service, r.route, r.backend, r.code, r.requests, r.retries])));
    }
  }
  return lines.join('\n');
}

function renderAnyStatus(st: Status): string {
  return st.role === 'controlplane' ? renderClusterStatus(st) : renderStatus(st);
}

export const up: Command = {
  name: 'up',
  summary: 'start the mesh node on this host and apply FILE (default: examples/demo.yaml)',
  usage: 'up [-f FILE…] [--timeout SECONDS] [--nodes N [--svid-ttl SECONDS]]',
  async run(ctx) {
    const multi = nodesOption(ctx);
    const { values } = parseArgs({ args: multi.rest, options: { file: { type: 'string', short: 'f', multiple: true }, timeout: { type: 'string', default: '60' } } });
    const files = values.file?.length ? values.file : [join(PACKAGE_ROOT, 'examples/demo.yaml')];
    await requireFeatures();
    if (multi.nodes !== undefined) {
      await upCluster(ctx, multi.nodes, files, applyFiles, multi.svidTtl);
      progress(ctx, 'waiting for workloads to be ready');
      ctx.out(renderAnyStatus(await waitReady(ctx, Number(values.timeout) * 1000)));
      return 0;
    }
    if (await isRunning(ctx.paths)) {
      progress(ctx, `node "${ctx.paths.instance}" already running`);
    } else {
      progress(ctx, `starting node "${ctx.paths.instance}" (log: ${ctx.paths.logFile})`);
      await startDaemon(ctx);
    }
    progress(ctx, `applying ${files.join(', ')}`);
    const results = await applyFiles(ctx, files);
    for (const r of results) ctx.err(`  ${r.resource} ${r.action}`);
    progress(ctx, 'waiting for workloads to be ready');
    ctx.out(renderAnyStatus(await waitReady(ctx, Number(values.timeout) * 1000)));
    ctx.out(`\nthe mesh is up. try: ebmesh exec client -- curl -s http://web.demo/`);
    return 0;
  },
};

export const down: Command = {
  name: 'down',
  summary: 'stop the node and remove everything it made (workloads, namespaces, programs, pins)',
  usage: 'down',
  async run(ctx) {
    if (await downCluster(ctx)) {
      ctx.out(`mesh "${ctx.paths.instance}" is down; every node and everything they made is removed`);
      return 0;
    }
    if (await isRunning(ctx.paths)) {
      const client = instanceClient(ctx.paths);
      const st = await client.call(meshApi.status, {});
      await client.call(meshApi.shutdown, { teardown: true });
      const until = Date.now() + 30_000;
      while (Date.now() < until && pidAlive(st.pid)) await sleep(50);
      if (pidAlive(st.pid)) throw new EbmeshError('EBMESH_STOP', `the node daemon (pid ${st.pid}) did not stop`);
    }
    // Also after a crash: remove whatever is left by name.
    await teardownInstance(ctx.paths);
    ctx.out(`node "${ctx.paths.instance}" is down; everything it made is removed`);
    return 0;
  },
};


export const status: Command = {
  name: 'status',
  summary: 'show the node, its data path, workloads and services',
  usage: 'status [-o json]',
  async run(ctx) {
    const { values } = parseArgs({ args: ctx.args, options: { output: { type: 'string', short: 'o' } } });
    const st = await instanceClient(ctx.paths).call(meshApi.status, {});
    ctx.out(values.output === 'json' ? JSON.stringify(st, null, 2) : renderAnyStatus(st));
    // 1 while anything is degraded (a node, an etcd member), for scripts.
    if (st.role === 'controlplane') return st.nodes.every((n) => n.healthy && !n.lastReconcileError) && (st.storeMembers ?? []).every((m) => m.healthy) ? 0 : 1;
    return st.lastReconcile?.error ? 1 : 0;
  },
};

export const exec: Command = {
  name: 'exec',
  summary: "run a command inside a workload's network namespace and cgroup",
  usage: 'exec WORKLOAD -- CMD [ARGS…]',
  async run(ctx) {
    const dash = ctx.args.indexOf('--');
    const ref = ctx.args[0];
    const argv = dash >= 0 ? ctx.args.slice(dash + 1) : ctx.args.slice(1);
    if (!ref || ref === '--' || argv.length === 0) throw new EbmeshError('EBMESH_USAGE', `usage: ebmesh ${this.usage}`);
    const { workload, status: st } = await instanceClient(ctx.paths).call(meshApi.workload, { ref });
    let netns = st?.netns;
    let cgroup = st?.cgroup;
    if (workload.spec.adopt) {
      cgroup = workload.spec.adopt.cgroup;
      netns = workload.spec.adopt.netns;
    }
    if (!cgroup || (!netns && !workload.spec.adopt)) {
      throw new EbmeshError('EBMESH_NOT_RUNNING', `workload ${ref} is not running (${st?.phase ?? 'Pending'})`);
    }
    if (!existsSync(cgroup)) throw new EbmeshError('EBMESH_NOT_RUNNING', `workload ${ref}: its cgroup ${cgroup} is gone`);
    const r = spawnSync(...inWorkload(cgroup, netns, argv), { stdio: 'inherit' });
    if (r.error) throw r.error;
    return r.status ?? (r.signal ? 128 + 1 : 1);
  },
};
