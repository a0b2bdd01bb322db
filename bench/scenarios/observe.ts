/**
 * `ebmesh bench observe`: the "Goodbye Sidecars" experiment. Two workloads,
 * a fixed open-loop HTTP rate over a fixed set of keep-alive connections,
 * latency from each request's scheduled send time; no mesh against ebmesh
 * with flow and HTTP visibility on.
 *
 * "No mesh" is the same two workloads with every ebmesh program detached
 * from the mesh cgroup (so the network, the processes and the placement are
 * identical); the programs are attached again the way the agent attaches
 * them, and both configurations alternate within each repeat.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLoadgen } from '../loadgen.js';
import { sampleFootprint } from '../footprint.js';
import { applyShortcut, attachMesh, benchLab, benchMesh, detachMesh } from './mesh-lab.js';
import { ConfigRuns, runFromLoad, type Scenario, type ScenarioContext } from '../scenario.js';

const CIDRS = { serviceCIDR: '10.98.8.0/24', podCIDR: '10.246.8.0/24' };
// The shortcut off: the visibility's own cost, on the same TCP path as no mesh (with it on, HTTP is parsed in sk_msg
// and the shortcut's gain would hide that cost); the shipped default (on) is measured as its own configuration.
const resources = benchMesh({ ...CIDRS, shortcut: false, workers: 2, http: 'keepalive_requests 10000000; keepalive_timeout 120s;' });

export const observe: Scenario = {
  name: 'observe',
  describe: 'fixed-rate keep-alive HTTP between two workloads: no mesh vs ebmesh with flow and HTTP visibility (same-node shortcut off, then on)',
  async run(ctx: ScenarioContext) {
    const lab = benchLab('obs');
    const cli = lab.cli;
    const rate = ctx.quick ? 1000 : 10_000;
    const durationS = ctx.quick ? 1 : 10;
    const connections = 32;
    const dir = mkdtempSync(join(tmpdir(), 'ebmesh-bench-obs-'));
    const configs = new ConfigRuns();
    const add = configs.add.bind(configs);
    const notes: string[] = [];
    try {
      ctx.progress('starting a mesh instance for the benchmark');
      writeFileSync(join(dir, 'bench.yaml'), resources);
      cli('up', '-f', join(dir, 'bench.yaml'));
      const status = JSON.parse(cli('status', '-o', 'json')) as { pid: number };
      const server = (JSON.parse(cli('get', 'wl', 'server', '-n', 'bench', '-o', 'json')) as { spec: { ip: string } }).spec.ip;
      const run = () => runLoadgen({
        url: `http://${server}:8080/`, rate, durationS, connections, warmupS: ctx.quick ? 0.2 : 1, timeoutMs: 2000,
        prefix: lab.exec('client'),
      });
      const seen = () => {
        const m = JSON.parse(cli('status', '-o', 'json')) as { datapath: { counters: Record<string, number> } };
        return { sent: m.datapath.counters.events_sent ?? 0, lost: m.datapath.counters.events_lost ?? 0 };
      };
      const shortcut = (on: boolean) => applyShortcut(cli, dir, CIDRS, on);
      const meshRun = async (name: string, description: string) => {
        const before = seen();
        // The daemon alone: the lab's workloads (nginx here) are its children.
        const agent = sampleFootprint([status.pid], 250, { descendants: false });
        const r = await run();
        const fp = agent.stop();
        const after = seen();
        add(name, description, runFromLoad(r, { agent: fp }), 'no mesh');
        notes.push(`${name}: ${r.requests.completed} requests completed; the kernel wrote ${after.sent - before.sent} flow events, lost ${after.lost - before.lost}; agent ${fp.cpuPercent.toFixed(1)}% of a core, max RSS ${(fp.maxRssBytes / 2 ** 20).toFixed(0)} MiB.`);
      };
      for (let rep = 0; rep < ctx.repeats; rep++) {
        ctx.progress(`no mesh, repeat ${rep + 1}/${ctx.repeats}`);
        await detachMesh(lab.instance);
        add('no mesh', 'the same two workloads with every ebmesh program detached', runFromLoad(await run()));
        await attachMesh(lab.instance);
        ctx.progress(`ebmesh, flows + HTTP, repeat ${rep + 1}/${ctx.repeats}`);
        await meshRun('ebmesh observe', 'sockops flows + cgroup_skb HTTP parsing on both workloads, agent reading the ring buffer; same-node shortcut off');
        ctx.progress(`ebmesh, flows + HTTP + shortcut, repeat ${rep + 1}/${ctx.repeats}`);
        await shortcut(true);
        await meshRun('ebmesh observe + shortcut', 'the default: the same with the same-node shortcut on (HTTP parsed in sk_msg)');
        await shortcut(false);
      }
      return {
        baseline: 'no mesh',
        configs: configs.results(),
        setup: [
          `# mesh: ebmesh --instance ${lab.instance} up -f bench.yaml (nginx server, 2 workers, keep-alive; a client workload; MeshConfig sameNodeShortcut: false)`,
          '# + shortcut: MeshConfig sameNodeShortcut: true applied before that run, false after',
          `# load: loadgen open loop ${rate} req/s, ${connections} keep-alive connections, ${durationS} s, latency from each request's scheduled send time`,
          '# no mesh: every pinned link under the mesh cgroup root detached; re-attached through the agent Datapath before the mesh run',
        ],
        notes,
      };
    } finally {
      lab.down();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
