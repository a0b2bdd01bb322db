/**
 * `ebmesh bench proxy`: HTTP/1.1 over keep-alive connections, at a fixed
 * 10,000 req/s (open loop) and at saturation (closed loop), through
 *  - no mesh: the client workload straight to the server's IP;
 *  - the ebmesh node proxy: client → Service VIP with an HTTPRoute, steered
 *    at connect() to the one proxy of the node;
 *  - the sidecar model: an HAProxy (Debian) beside the client and one beside
 *    the server, each in its workload's network namespace, with iptables
 *    REDIRECT capturing the traffic there, as sidecar meshes do.
 * The mesh instance, its workloads' namespaces and every rule in them belong
 * to the benchmark and are removed afterwards; nothing is changed on the host.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { instancePaths, netnsName } from '../../src/paths.js';
import { runLoadgen, type LoadgenOptions } from '../loadgen.js';
import { sampleFootprint, type FootprintSampler } from '../footprint.js';
import { applyShortcut, benchLab, benchMesh, benchService, meshStatus, nodeProxyPid, routeThroughProxy, serviceVip, workloadIp } from './mesh-lab.js';
import { SIDECAR_MODEL_SETUP, startSidecarModel, type SidecarModel } from './sidecar-model.js';
import { ConfigRuns, rotation, runFromLoad, type Scenario, type ScenarioContext } from '../scenario.js';
import { pairedComparison } from '../analysis.js';

const PLAN = { serviceCIDR: '10.99.0.0/24', podCIDR: '10.247.0.0/24' };
/** Unmeasured load given to each new proxy generation before it is measured (see warmProxy). */
const WARM_S = 5;

// The shared server and client, nginx keeping connections for the whole run, plus the routed Service.
const resources = `${benchMesh({ ...PLAN, http: 'keepalive_requests 1000000;' })}---
${benchService('target', 'server')}---
${routeThroughProxy('target')}`;

export const proxy: Scenario = {
  name: 'proxy',
  describe: 'HTTP through the node proxy (HTTPRoute) vs no mesh vs the sidecar model (HAProxy + iptables REDIRECT), at 10,000 req/s and at saturation',
  async run(ctx: ScenarioContext) {
    const lab = benchLab('proxy');
    const cli = lab.cli;
    const rate = ctx.quick ? 1000 : 10_000;
    const durationS = ctx.quick ? 1 : 10;
    const connections = 64;
    const dir = mkdtempSync(join(tmpdir(), 'ebmesh-bench-proxy-'));
    const configs = new ConfigRuns();
    const add = configs.add.bind(configs);
    const notes: string[] = [];
    let sidecars: SidecarModel | undefined;
    try {
      ctx.progress('starting a mesh instance for the benchmark');
      writeFileSync(join(dir, 'mesh.yaml'), resources);
      cli('up', '-f', join(dir, 'mesh.yaml'));
      const status = meshStatus(cli);
      // Read again after each handover (below), which replaces the process; not before every run (a CLI start each).
      let proxyPidNow = nodeProxyPid(cli);
      const proxyPid = () => proxyPidNow;
      const server = workloadIp(cli, 'server');
      const vip = serviceVip(cli, 'target');
      const inMesh = lab.exec('client');
      // A proxy generation that just started runs its JavaScript cold (the JIT
      // has not compiled the hot path yet): its first seconds are slower, and an
      // open-loop run that starts there builds a queue it works off for the rest
      // of the run. Like the load generator's own warm-up, but longer and
      // unmeasured: every new generation gets WARM_S of load before it is measured.
      const warmProxy = () => runLoadgen({ url: `http://${vip}:80/`, rate: 0, durationS: ctx.quick ? 0.5 : WARM_S, connections, warmupS: 0, timeoutMs: 5000, prefix: inMesh });
      await warmProxy();
      // The proxy's pooled connections to nginx keep the path they were made on: a new generation (handover) makes new ones.
      const shortcut = async (on: boolean) => {
        await applyShortcut(cli, dir, PLAN, on);
        cli('proxy', 'restart');
        proxyPidNow = nodeProxyPid(cli);
        await warmProxy();
      };
      const serverPid = status.workloads.find((w) => w.name === 'server')?.pid;
      const p = instancePaths(lab.instance);
      sidecars = startSidecarModel(dir, [
        { name: 'client', netns: netnsName(p, 'bench', 'client'), outbound: { dst: server, port: 8080, upstreams: [`${server}:8080`] } },
        { name: 'server', netns: netnsName(p, 'bench', 'server'), inbound: { appPort: 8080 } },
      ]);
      const load = (url: string, r: number) =>
        runLoadgen({ url, rate: r, durationS, connections, warmupS: ctx.quick ? 0.3 : 2, timeoutMs: 5000, connectEach: false, prefix: inMesh } satisfies LoadgenOptions);
      const sample = (pids: Array<number | undefined>): FootprintSampler => sampleFootprint(pids.filter((x): x is number => !!x), 250);
      const measure = async (url: string, r: number, extra: Record<string, Array<number | undefined>>) => {
        const fps = Object.fromEntries(Object.entries({ server: [serverPid], ...extra }).map(([k, v]) => [k, sample(v)]));
        const res = await load(url, r);
        return runFromLoad(res, Object.fromEntries(Object.entries(fps).map(([k, s]) => [k, s.stop()])));
      };
      const loads: Array<[string, number]> = [[`${rate / 1000}k req/s`, rate], ['saturation', 0]];
      const direct = `http://${server}:8080/`;
      const routed = `http://${vip}:80/`;
      interface Step { name: string; description: string; url: string; extra: () => Record<string, Array<number | undefined>>; before?(): Promise<void> | void; after?(): Promise<void> | void }
      const steps: Step[] = [
        { name: 'no mesh', description: `client → server IP:8080 directly, ${connections} keep-alive connections`, url: direct, extra: () => ({}) },
        {
          name: 'node proxy',
          description: `client → VIP:80 with an HTTPRoute: steered at connect() to the ebmesh node proxy (${status.proxy?.stats?.workers ?? '?'} workers), which routes to the server; every hop socket to socket (same-node shortcut, the default)`,
          url: routed, extra: () => ({ proxy: [proxyPid()] }),
        },
        {
          name: 'node proxy without the shortcut',
          description: 'the same with MeshConfig sameNodeShortcut: false (and a proxy handover for fresh upstream connections): every hop through TCP/IP, veth and bridge',
          url: routed, extra: () => ({ proxy: [proxyPid()] }), before: () => shortcut(false), after: () => shortcut(true),
        },
        {
          name: 'sidecars',
          description: 'client → server IP:8080 captured by iptables REDIRECT into an HAProxy sidecar (2 threads) in the client namespace, then into one in the server namespace',
          url: direct, extra: () => ({ proxy: sidecars!.pids }), before: () => sidecars!.rulesOn(), after: () => sidecars!.rulesOff(),
        },
      ];
      // A configuration is set up once a repeat and measured at both loads (its setup — for "without the
      // shortcut" two applies and two handovers — is the slow part); which configuration goes first, and
      // which load, changes every repeat.
      for (let rep = 0; rep < ctx.repeats; rep++) {
        for (const step of rotation(steps, rep)) {
          await step.before?.();
          try {
            for (const [loadName, r] of rotation(loads, rep)) {
              ctx.progress(`${loadName}, repeat ${rep + 1}/${ctx.repeats}: ${step.name}`);
              const name = `${step.name}, ${loadName}`;
              const base = `no mesh, ${loadName}`;
              add(name, step.description, await measure(step.url, r, step.extra()), name === base ? undefined : base);
            }
          } finally {
            await step.after?.();
          }
        }
      }
      // The target is on p99: say how the two models compare in each repeat, not only in medians.
      for (const [loadName] of loads) {
        const line = pairedComparison(configs.results(), `node proxy, ${loadName}`, `sidecars, ${loadName}`, 'p99');
        if (line) notes.push(line);
      }
      return {
        baseline: `no mesh, ${loads[0]![0]}`,
        configs: configs.results(),
        setup: [
          `# mesh: ebmesh --instance ${lab.instance} up -f mesh.yaml (nginx server with 1 worker, a client workload, Service target with an HTTPRoute; same-node shortcut on, the default: the proxy's connections go socket to socket)`,
          '# "without the shortcut": ebmesh apply of the MeshConfig with sameNodeShortcut: false, then ebmesh proxy restart (new upstream connections); on again after the run',
          `# warm-up: each new proxy generation (after up, and after each restart) gets ${WARM_S} s of unmeasured saturation load through the VIP before it is measured (JIT); each run also has the load generator's own warm-up`,
          '# order: each repeat sets up every configuration once and measures it at both loads; it starts one configuration further along than the repeat before (so the one after the handovers of "without the shortcut" changes too), and the first of the two loads alternates',
          `# load: loadgen in the client workload (ebmesh exec), ${connections} keep-alive connections, ${durationS} s per run; open loop at ${rate} req/s, and closed loop (saturation)`,
          SIDECAR_MODEL_SETUP,
          `# footprints: "proxy" = the node proxy process tree (primary + workers) or both HAProxy sidecars; "server" = nginx. (The daemon is not sampled: its process tree includes the proxy.)`,
        ],
        notes: [
          ...notes,
          'Each configuration is compared with "no mesh" at the same load. The box has few cores: the load generator, proxies and server share them.',
          'The node proxy is one process tree per node whatever the number of workloads; the sidecar model runs two proxies per client–server pair, one per workload.',
        ],
      };
    } finally {
      sidecars?.stop();
      lab.down();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
