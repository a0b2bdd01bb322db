/**
 * `ebmesh bench footprint`: what the mesh costs a node in memory and CPU
 * with 10, 50 and 100 workloads, idle and under a modest fixed open-loop
 * HTTP load spread over the workloads, against the sidecar model (one
 * HAProxy per workload, iptables REDIRECT in its namespace).
 *
 *  - ebmesh (L4): the node daemon (agent; in this one-node lab also the
 *    control plane and its store) without its workloads, plus the kernel
 *    memory of the BPF programs and of every map they use;
 *  - ebmesh + node proxy: the same with an HTTPRoute on the Service, so all
 *    its traffic goes through the node proxy (primary + workers), counted too;
 *  - sidecars: the sum over one HAProxy per workload, with every ebmesh
 *    program detached (no mesh in the path).
 *
 * The workloads are one client plus nginx servers behind one Service; the
 * load is the client's, to the Service's VIP, over one keep-alive
 * connection per workload. The instance, its namespaces and rules belong to
 * the benchmark and are removed afterwards.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { instancePaths, netnsName } from '../../src/paths.js';
import { bpfFootprint, sampleFootprint, type BpfFootprint, type Footprint } from '../footprint.js';
import { runLoadgen } from '../loadgen.js';
import { summarize, type Summary } from '../stats.js';
import type { Bar } from '../svg.js';
import { ConfigRuns, emptyRun, runFromLoad, type RunResult, type Scenario, type ScenarioContext, type ScenarioTable } from '../scenario.js';
import {
  attachMesh, benchLab, benchService, detachMesh, nginxWorkload, routeThroughProxy, serviceVip, waitAllReady, type MeshStatus,
} from './mesh-lab.js';
import { SIDECAR_MODEL_SETUP, startSidecarModel, type SidecarModel } from './sidecar-model.js';

const SERVICE_CIDR = '10.97.16.0/24';
const POD_CIDR = '10.245.16.0/24';
const SAMPLE_MS = 1000; // max PSS needs few samples, CPU comes from tick counters; reading /proc for 300 processes is not free

const KEEPALIVE = 'keepalive_requests 10000000; keepalive_timeout 120s;';

/** Servers w<from>..w<to-1>, all behind Service fleet. */
const servers = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => nginxWorkload(`w${from + i}`, 'fleet', { http: KEEPALIVE })).join('---\n');

// The Service must select something when applied: the first server comes with it.
const base = `apiVersion: ebmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {serviceCIDR: ${SERVICE_CIDR}, podCIDR: ${POD_CIDR}}
---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: bench, labels: {app: client}}
spec: {command: [sleep, infinity]}
---
${servers(0, 1)}---
${benchService('fleet', 'fleet')}`;

type Model = 'ebmesh' | 'ebmesh + node proxy' | 'sidecars';
type State = 'idle' | 'load';
const MODELS: Model[] = ['ebmesh', 'ebmesh + node proxy', 'sidecars'];

const configName = (m: Model, n: number, s: State) => `${m}, ${n} workloads, ${s}`;

const MiB = 2 ** 20;
const memOf = (f: Footprint | undefined) => (f ? f.maxPssBytes ?? f.maxRssBytes : 0);

export const footprint: Scenario = {
  name: 'footprint',
  describe: 'memory and CPU of the mesh on a node with 10, 50 and 100 workloads, idle and under load, vs one HAProxy sidecar per workload',
  async run(ctx: ScenarioContext) {
    const lab = benchLab('fp');
    const cli = lab.cli;
    const counts = ctx.quick ? [3] : [10, 50, 100];
    const rate = ctx.quick ? 200 : 1000;
    const durationS = ctx.quick ? 1 : 5;
    const idleS = ctx.quick ? 1 : 5;
    const { repeats } = ctx;
    const dir = mkdtempSync(join(tmpdir(), 'ebmesh-bench-fp-'));
    const configs = new ConfigRuns();
    const notes: string[] = [];
    const bpfByCount = new Map<number, BpfFootprint>();
    let sidecars: SidecarModel | undefined;
    const p = instancePaths(lab.instance);
    try {
      ctx.progress('starting a mesh instance for the benchmark');
      writeFileSync(join(dir, 'base.yaml'), base);
      cli('up', '-f', join(dir, 'base.yaml'));
      const route = join(dir, 'route.yaml');
      writeFileSync(route, routeThroughProxy('fleet'));
      const vip = serviceVip(cli, 'fleet');
      let have = 1; // servers running

      for (const n of counts) {
        const want = n - 1; // n workloads: the client and n - 1 servers
        if (want > have) {
          ctx.progress(`${n} workloads: starting servers w${have}..w${want - 1}`);
          const f = join(dir, `servers-${want}.yaml`);
          writeFileSync(f, servers(have, want));
          cli('apply', '-f', f);
          have = want;
        }
        const st = await waitAllReady(cli, n, 300_000);
        const workloadPids = st.workloads.map((w) => w.pid).filter((x): x is number => !!x);
        const serverIps = st.workloads.filter((w) => /^w\d+$/.test(w.name) && w.ip).map((w) => w.ip!);
        const load = () => runLoadgen({
          url: `http://${vip}:80/`, rate, durationS, connections: n, warmupS: ctx.quick ? 0.2 : 1, timeoutMs: 5000,
          prefix: lab.exec('client'),
        });

        /** Samples the given processes idle, then under load; `repeats` times each. */
        const measure = async (model: Model, sample: () => () => Record<string, Footprint>, baseline?: string) => {
          for (let rep = 0; rep < repeats; rep++) {
            ctx.progress(`${n} workloads, ${model}, repeat ${rep + 1}/${repeats}: idle ${idleS} s, then ${rate} req/s for ${durationS} s`);
            let stop = sample();
            await new Promise((r) => setTimeout(r, idleS * 1000));
            configs.add(configName(model, n, 'idle'), `${model}, nothing sent for ${idleS} s`, emptyRun('idle', ['sleep', String(idleS)], stop()),
              baseline && configName('sidecars', n, 'idle'));
            stop = sample();
            const res = await load();
            configs.add(configName(model, n, 'load'), `${model}, ${rate} req/s to the Service VIP over ${n} keep-alive connections`, runFromLoad(res, stop()),
              baseline && configName('sidecars', n, 'load'));
          }
        };
        const meshSample = (status: MeshStatus, countProxy: boolean) => () => {
          const proxyPid = status.proxy?.pid;
          // The daemon's children are the workloads and the node proxy: the proxy counts on its own (when it carries the traffic), the workloads not at all.
          const daemon = sampleFootprint([status.pid], SAMPLE_MS, { exclude: [...workloadPids, ...(proxyPid ? [proxyPid] : [])] });
          const proxy = countProxy && proxyPid ? sampleFootprint([proxyPid], SAMPLE_MS) : undefined;
          return () => ({ daemon: daemon.stop(), ...(proxy ? { 'node proxy': proxy.stop() } : {}) });
        };

        bpfByCount.set(n, bpfFootprint(p.linkPins));
        await measure('ebmesh', meshSample(st, false), 'sidecars');

        ctx.progress(`${n} workloads: starting ${n} HAProxy sidecars, detaching the mesh`);
        sidecars = startSidecarModel(dir, [
          { name: 'client', netns: netnsName(p, 'bench', 'client'), outbound: { dst: vip, port: 80, upstreams: serverIps.map((ip) => `${ip}:8080`), routeVip: true } },
          ...st.workloads.filter((w) => /^w\d+$/.test(w.name)).map((w) => ({ name: w.name, netns: netnsName(p, 'bench', w.name), inbound: { appPort: 8080 } })),
        ]);
        await detachMesh(lab.instance);
        sidecars.rulesOn();
        const pids = sidecars.pids;
        await measure('sidecars', () => {
          const s = sampleFootprint(pids, SAMPLE_MS);
          return () => ({ sidecars: s.stop() });
        });
        sidecars.stop();
        sidecars = undefined;
        await attachMesh(lab.instance);

        ctx.progress(`${n} workloads: HTTPRoute on the Service, through the node proxy`);
        cli('apply', '-f', route);
        const withProxy = await waitAllReady(cli, n);
        if (!withProxy.proxy?.pid) throw new Error('the node proxy is not running although the Service has an HTTPRoute');
        await measure('ebmesh + node proxy', meshSample(withProxy, true), 'sidecars');
        cli('delete', '-f', route);
      }

      const tables = footprintTables(configs.results().map((c) => ({ name: c.name, runs: c.runs })), counts, bpfByCount);
      const bpfLine = [...bpfByCount].map(([n, b]) => `${n} workloads: ${b.programs} programs ${(b.programBytes / MiB).toFixed(2)} MiB, ${b.maps} maps ${(b.mapBytes / MiB).toFixed(1)} MiB (largest: ${b.largestMaps.map((m) => `${m.name} ${(m.bytes / MiB).toFixed(1)}`).join(', ')})`).join('; ');
      return {
        baseline: configName('sidecars', counts[0]!, 'idle'),
        configs: configs.results().map((c) => (c.name.startsWith('sidecars') ? { ...c, baseline: c.name } : c)),
        tables: tables.tables,
        bars: tables.bars,
        setup: [
          `# mesh: ebmesh --instance ${lab.instance} up -f base.yaml (MeshConfig defaults, so the same-node shortcut is on; a client workload, nginx server w0, Service fleet), then apply of more nginx servers (1 worker each) up to N - 1 servers, N in ${counts.join(', ')}`,
          `# load: loadgen in the client (ebmesh exec), open loop ${rate} req/s to the fleet VIP:80 over N keep-alive connections, ${durationS} s; idle: ${idleS} s with nothing sent`,
          `# ebmesh: daemon process tree without the workloads and the node proxy (PSS from /proc/PID/smaps_rollup, CPU from /proc/PID/stat, every ${SAMPLE_MS} ms), plus bpftool bytes_memlock of the programs attached under ${p.linkPins} and of every map they use`,
          '# ebmesh + node proxy: the same, plus the node proxy process tree (primary + workers), with an HTTPRoute on fleet so every request goes through it',
          SIDECAR_MODEL_SETUP,
          '# sidecars: the client\'s sidecar captures fleet VIP:80 (ip route VIP/32 dev eth0 in the client netns meanwhile) and balances round robin over the servers; each server\'s captures :8080; every ebmesh program detached for these runs',
        ],
        notes: [
          ...notes,
          `BPF kernel memory (bytes_memlock, included in the ebmesh totals): ${bpfLine}. Maps are sized by their max_entries when made, so this does not grow with the workloads.`,
          'Memory is the largest PSS seen while sampling (shared pages split between the processes sharing them), summed over the processes; RSS is in report.json. The daemon of this one-node lab also runs the control plane and its store, which a cluster runs elsewhere: its figure is an upper bound for the agent.',
          'The node proxy, once started, stays: in the ebmesh (L4) runs after the first count it is running, idle and not counted.',
          'Ratios in the tables are sidecar model ÷ this configuration: how many times more the sidecars cost.',
        ],
      };
    } finally {
      sidecars?.stop();
      lab.down();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

/** Per-run totals of one model: memory (bytes, BPF included for the mesh) and CPU (% of a core). */
function totals(runs: readonly RunResult[], bpf: number): { mem: Summary; cpu: Summary } {
  const mem = runs.map((r) => Object.values(r.footprints).reduce((a, f) => a + memOf(f), 0) + bpf);
  const cpu = runs.map((r) => Object.values(r.footprints).reduce((a, f) => a + f.cpuPercent, 0));
  return { mem: summarize(mem), cpu: summarize(cpu) };
}

function range(s: Summary, scale: number, digits: number): string {
  const f = (v: number) => (v / scale).toFixed(digits);
  return s.n > 1 ? `${f(s.median)} [${f(s.min)}–${f(s.max)}]` : f(s.median);
}

export function footprintTables(
  configs: ReadonlyArray<{ name: string; runs: RunResult[] }>, counts: readonly number[], bpf: ReadonlyMap<number, BpfFootprint>,
): { tables: ScenarioTable[]; bars: Array<{ name: string; title: string; unit: string; bars: Bar[] }> } {
  const rows: string[][] = [];
  const bars: Bar[] = [];
  for (const state of ['idle', 'load'] as State[]) {
    for (const n of counts) {
      const b = bpf.get(n);
      const bpfBytes = b ? b.programBytes + b.mapBytes : 0;
      const t = new Map<Model, { mem: Summary; cpu: Summary }>();
      for (const m of MODELS) {
        const c = configs.find((x) => x.name === configName(m, n, state));
        if (c) t.set(m, totals(c.runs, m === 'sidecars' ? 0 : bpfBytes));
      }
      const side = t.get('sidecars');
      for (const [m, v] of t) {
        rows.push([
          String(n), state, m,
          range(v.mem, MiB, 1), (v.mem.median / n / MiB).toFixed(2),
          range(v.cpu, 1, 1), (v.cpu.median / n).toFixed(2),
          side ? `×${(side.mem.median / v.mem.median).toFixed(2)}` : '–',
          side && v.cpu.median > 0 ? `×${(side.cpu.median / v.cpu.median).toFixed(2)}` : '–',
        ]);
        if (state === 'load') bars.push({ name: `${m}, ${n}`, value: v.mem.median / MiB, low: v.mem.min / MiB, high: v.mem.max / MiB, label: `${(v.mem.median / MiB).toFixed(0)}` });
      }
    }
  }
  return {
    tables: [{
      title: 'Footprint per node and per workload (median [min–max] over repeats; memory = PSS, plus BPF kernel memory for ebmesh)',
      header: ['workloads', 'state', 'model', 'memory MiB', 'per workload MiB', 'CPU % of a core', 'per workload CPU %', 'sidecars ÷ this, memory', 'sidecars ÷ this, CPU'],
      rows,
    }],
    bars: [{ name: 'memory', title: 'footprint under load: memory per node (median, min–max)', unit: 'MiB (PSS + BPF)', bars }],
  };
}
