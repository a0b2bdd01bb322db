/**
 * `ebmesh bench sidecars`: the "Goodbye Sidecars" comparison in one run.
 * Two workloads, a fixed open-loop HTTP rate over a fixed set of keep-alive
 * connections, latency from each request's scheduled send time, through:
 *  - no mesh: every ebmesh program detached (same workloads, network, placement);
 *  - ebmesh L4: socket load balancing (client → Service VIP), a
 *    NetworkPolicy admitting the client, flow reports; HTTP parsing detached;
 *  - ebmesh with HTTP visibility: the same plus the HTTP parsing programs;
 *  - ebmesh node proxy: client → the VIP of a Service with an HTTPRoute;
 *  - the sidecar model: no ebmesh program, one HAProxy beside each workload,
 *    iptables REDIRECT at both ends;
 *  - ebmesh with HTTP visibility and the same-node shortcut, the mesh's
 *    default for two workloads on one node;
 *  - the ebmesh node proxy with the same-node shortcut, as a node runs it by
 *    default: the client's connection to the proxy and the proxy's to the
 *    server go socket to socket.
 * The mesh runs with the same-node shortcut off except in the two last
 * configurations: with it on, writes bypass the TCP/IP stack (and its HTTP
 * parsing happens in sk_msg whatever cgroup_skb programs are attached), which
 * would compare a different path rather than the mesh's cost on the same one.
 * The node proxy's pooled connections to the server keep the path they were
 * made on, so its shortcut row is framed by proxy handovers (fresh upstream
 * connections), each followed by unmeasured load (a new generation's
 * JavaScript is cold).
 * The configurations alternate within each repeat, each repeat starting one
 * further along, so neither a slow spell of the machine nor the order favours
 * one. The instance is the benchmark's own.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { instancePaths, netnsName } from '../../src/paths.js';
import { sampleFootprint, waitQuiet, type Footprint } from '../footprint.js';
import { runLoadgen } from '../loadgen.js';
import { ConfigRuns, rotation, runFromLoad, type Scenario, type ScenarioContext } from '../scenario.js';
import {
  HTTP_VISIBILITY_PROGRAMS, attachMesh, benchLab, benchMesh, benchService, applyShortcut, detachMesh, nodeProxyPid, routeThroughProxy, serverPolicy, serviceVip, waitAllReady, workloadIp,
} from './mesh-lab.js';
import { SIDECAR_MODEL_SETUP, startSidecarModel, type SidecarModel } from './sidecar-model.js';
import { pairedComparison } from '../analysis.js';

const PLAN = { serviceCIDR: '10.97.24.0/24', podCIDR: '10.245.24.0/24' };
const resources = `${benchMesh({ ...PLAN, shortcut: false, workers: 2, http: 'keepalive_requests 10000000; keepalive_timeout 120s;' })}---
${benchService('plain', 'server')}---
${benchService('routed', 'server')}---
${routeThroughProxy('routed')}---
${serverPolicy(1)}`;

const SAMPLE_MS = 250;
/** Unmeasured load given to each new proxy generation before it is measured (see bench proxy). */
const WARM_S = 5;

export const sidecars: Scenario = {
  name: 'sidecars',
  describe: '"Goodbye Sidecars": fixed-rate keep-alive HTTP between two workloads through no mesh, ebmesh L4, ebmesh + HTTP visibility, the ebmesh node proxy and HAProxy sidecars (and ebmesh with the same-node shortcut)',
  async run(ctx: ScenarioContext) {
    const lab = benchLab('gs');
    const cli = lab.cli;
    const rate = ctx.quick ? 1000 : 10_000;
    const durationS = ctx.quick ? 1 : 10;
    const connections = 32;
    const dir = mkdtempSync(join(tmpdir(), 'ebmesh-bench-gs-'));
    const configs = new ConfigRuns();
    const notes: string[] = [];
    let model: SidecarModel | undefined;
    try {
      ctx.progress('starting a mesh instance for the benchmark');
      writeFileSync(join(dir, 'bench.yaml'), resources);
      cli('up', '-f', join(dir, 'bench.yaml'));
      const st = await waitAllReady(cli, 2);
      if (!st.proxy?.pid) throw new Error('the node proxy is not running although Service routed has an HTTPRoute');
      // Read again after each handover (the shortcut row's), which replaces the process; not before every run (a CLI start each).
      let proxyPidNow = st.proxy.pid;
      const proxyPid = () => proxyPidNow;
      const workloadPids = st.workloads.map((w) => w.pid).filter((x): x is number => !!x);
      const server = workloadIp(cli, 'server');
      const plain = serviceVip(cli, 'plain');
      const routed = serviceVip(cli, 'routed');
      const p = instancePaths(lab.instance);
      const sm = startSidecarModel(dir, [
        { name: 'client', netns: netnsName(p, 'bench', 'client'), outbound: { dst: server, port: 8080, upstreams: [`${server}:8080`] } },
        { name: 'server', netns: netnsName(p, 'bench', 'server'), inbound: { appPort: 8080 } },
      ]);
      model = sm;
      const sidecarPids = sm.pids;

      // The daemon's children are the workloads and the node proxy: neither counts as the agent.
      const agent = () => sampleFootprint([st.pid], SAMPLE_MS, { exclude: [...workloadPids, proxyPid()] });
      const proxy = () => sampleFootprint([proxyPid()], SAMPLE_MS);
      const run = async (name: string, description: string, url: string, sample: Record<string, () => { stop(): Footprint }>) => {
        const samplers = Object.entries(sample).map(([k, f]) => [k, f()] as const);
        const r = await runLoadgen({
          url, rate, durationS, connections, warmupS: ctx.quick ? 0.2 : 1, timeoutMs: 5000,
          prefix: lab.exec('client'),
        });
        configs.add(name, description, runFromLoad(r, Object.fromEntries(samplers.map(([k, s]) => [k, s.stop()]))), name === 'no mesh' ? undefined : 'no mesh');
        if (r.belowTarget) notes.push(`${name}: a run reached ${Math.round(r.achievedRate).toLocaleString('en-US')} of ${rate.toLocaleString('en-US')} req/s (below target).`);
      };

      const shortcut = (on: boolean) => applyShortcut(cli, dir, PLAN, on);
      const warmProxy = () => runLoadgen({ url: `http://${routed}:80/`, rate: 0, durationS: ctx.quick ? 0.5 : WARM_S, connections, warmupS: 0, timeoutMs: 5000, prefix: lab.exec('client') });
      // New upstream connections, made on the path the shortcut setting gives them now.
      const handover = async () => {
        cli('proxy', 'restart');
        proxyPidNow = nodeProxyPid(cli);
        await warmProxy();
      };
      const mesh = async (http: boolean) => {
        await attachMesh(lab.instance);
        if (!http) await detachMesh(lab.instance, HTTP_VISIBILITY_PROGRAMS);
      };
      const direct = `http://${server}:8080/`;
      const steps: Array<{ name: string; description: string; url: string; sample: Record<string, () => { stop(): Footprint }>; before(): Promise<void> | void; after?(): Promise<void> | void }> = [
        { name: 'no mesh', description: 'client → server IP:8080, every ebmesh program detached', url: direct, sample: {}, before: () => detachMesh(lab.instance) },
        {
          name: 'sidecars', description: 'client → server IP:8080 captured by iptables REDIRECT into an HAProxy sidecar in each workload, no ebmesh program', url: direct,
          sample: { proxy: () => sampleFootprint(sidecarPids, SAMPLE_MS) },
          before: async () => { await detachMesh(lab.instance); sm.rulesOn(); }, after: () => sm.rulesOff(),
        },
        {
          name: 'ebmesh L4', description: 'client → Service VIP:80 balanced at connect(), NetworkPolicy admitting the client, flow reports; no HTTP parsing',
          url: `http://${plain}:80/`, sample: { agent }, before: () => mesh(false),
        },
        {
          name: 'ebmesh + HTTP visibility', description: 'the same plus HTTP parsing (cgroup_skb both directions) and the agent reading its events',
          url: `http://${plain}:80/`, sample: { agent }, before: () => mesh(true),
        },
        {
          name: 'ebmesh node proxy', description: `client → VIP:80 of a Service with an HTTPRoute: steered at connect() to the node proxy (${st.proxy?.stats?.workers ?? '?'} workers)`,
          url: `http://${routed}:80/`, sample: { agent, proxy }, before: () => mesh(true),
        },
        {
          name: 'ebmesh + HTTP visibility + shortcut', description: 'ebmesh + HTTP visibility with the same-node shortcut on (the default): writes go socket to socket (sk_msg), HTTP parsed there',
          url: `http://${plain}:80/`, sample: { agent }, before: async () => { await mesh(true); await shortcut(true); }, after: () => shortcut(false),
        },
        {
          name: 'ebmesh node proxy + shortcut', description: 'the node proxy as a node runs it by default, with the same-node shortcut on: client → proxy and proxy → server socket to socket (sk_msg)',
          url: `http://${routed}:80/`, sample: { agent, proxy },
          before: async () => { await mesh(true); await shortcut(true); await handover(); },
          after: async () => { await shortcut(false); await handover(); },
        },
      ];
      // The node proxy has served nothing since `up`: its JavaScript is as
      // cold as after a handover, so it gets the same unmeasured load first
      // (else the first repeat that reaches it measures V8 compiling).
      await mesh(true);
      await warmProxy();
      await waitQuiet([proxyPid()]);
      for (let rep = 0; rep < ctx.repeats; rep++) {
        for (const s of rotation(steps, rep)) {
          ctx.progress(`repeat ${rep + 1}/${ctx.repeats}: ${s.name}`);
          await s.before();
          try {
            await run(s.name, s.description, s.url, s.sample);
          } finally {
            await s.after?.();
          }
          // A proxy that fell behind keeps working off its backlog after the load stops.
          if (!(await waitQuiet([proxyPid(), ...sidecarPids]))) notes.push(`repeat ${rep + 1}, after ${s.name}: the proxies were still busy 10 s later.`);
        }
      }
      // The target is per repeat (mean and p99 below the sidecar model's in every one): say so repeat by repeat.
      for (const proxyRow of ['ebmesh node proxy', 'ebmesh node proxy + shortcut']) {
        for (const key of ['mean', 'p99'] as const) {
          const line = pairedComparison(configs.results(), proxyRow, 'sidecars', key);
          if (line) notes.push(line);
        }
      }
      // Tables list configurations in the order of the first repeat, which starts with the baseline.
      return {
        baseline: 'no mesh',
        configs: configs.results(),
        setup: [
          `# mesh: ebmesh --instance ${lab.instance} up -f bench.yaml (nginx server with 2 workers, a client; Services plain and routed (with an HTTPRoute); NetworkPolicy server-in admitting app=client on 8080)`,
          `# load: loadgen in the client (ebmesh exec), open loop ${rate} req/s over ${connections} keep-alive connections, ${durationS} s per run, latency from each request's scheduled send time`,
          '# no mesh and sidecars: every link under the mesh cgroup root detached; ebmesh L4: all attached except ebm_http_egress/ebm_http_ingress; the rest: all attached (the agent\'s own Datapath code)',
          '# MeshConfig sameNodeShortcut: false, except for "ebmesh + HTTP visibility + shortcut" and "ebmesh node proxy + shortcut" (ebmesh apply of the MeshConfig before and after each)',
          `# before the first repeat: ${ctx.quick ? 0.5 : WARM_S} s of unmeasured saturation load through the routed VIP (the node proxy started cold)`,
          `# "ebmesh node proxy + shortcut": ebmesh proxy restart (a handover: fresh upstream connections) after the shortcut went on and again after it went off, each followed by ${ctx.quick ? 0.5 : WARM_S} s of unmeasured saturation load through the routed VIP (the new generation's JavaScript is cold)`,
          '# order: each repeat runs every configuration once, starting one configuration further along than the repeat before; after each run, up to 10 s until the node proxy and the sidecars use under 10% of a core',
          SIDECAR_MODEL_SETUP,
          '# footprints: "agent" = the node daemon without the workloads and the node proxy; "proxy" = the node proxy tree or both HAProxy sidecars',
        ],
        notes: [
          ...notes,
          'Every figure is compared with "no mesh" measured in the same run; the configurations alternate within each repeat, in a rotating order. The load generator, server, proxies and agent share the machine\'s cores.',
        ],
      };
    } finally {
      model?.stop();
      lab.down();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
