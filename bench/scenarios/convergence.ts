/**
 * The convergence measurement (src/bench/convergence.ts) as a scenario of
 * the suite, so `ebmesh bench` and `bench --quick` cover it and its figures
 * land in the same report. It counts no requests: its figures are a table.
 * One lab run gives many samples (changes × nodes), so it ignores --repeats.
 */
import { CONVERGENCE_FULL, CONVERGENCE_QUICK, measureConvergence } from '../convergence.js';
import type { Scenario, ScenarioContext } from '../scenario.js';

export const convergence: Scenario = {
  name: 'convergence',
  describe: "time from `ebmesh apply` to every node's kernel maps in a multi-node lab with etcd: a bulk apply, then single-endpoint changes",
  async run(ctx: ScenarioContext) {
    const s = ctx.quick ? CONVERGENCE_QUICK : CONVERGENCE_FULL;
    const r = await measureConvergence(s, ctx.progress);
    return {
      baseline: '',
      configs: [],
      setup: [
        `# lab: ebmesh --instance ${r.instance} up --nodes ${s.nodes} (etcd, control plane, one agent per node)`,
        `# bulk: one ebmesh apply of ${s.services} Services and ${s.endpoints} external endpoint Workloads; then ${s.changes} applies of one endpoint each`,
        '# measured by polling each node\'s pinned ebm_lb4_frontends map for the changed Service\'s backend count',
      ],
      notes: [`${r.note}.`, 'One lab run; --repeats does not apply (each change is sampled on every node).'],
      tables: [{
        title: `Convergence, ${r.nodes} nodes, ${r.services} services, ${r.endpoints} endpoints (store: ${r.store})`,
        header: ['what', 'ms'],
        rows: [
          [`one endpoint added, in every node's maps: p50 (${r.change.samples} samples)`, r.change.p50Ms.toFixed(1)],
          ['… p99', r.change.p99Ms.toFixed(1)],
          ['… max', r.change.maxMs.toFixed(1)],
          ['the apply command alone (CLI start included): p50', r.change.applyCommandP50Ms.toFixed(1)],
          ['bulk apply: the command returned', String(r.bulk.applyMs)],
          ['bulk apply: in every node\'s maps (slowest node)', String(Math.max(...r.bulk.everyNodeMs))],
        ],
      }],
    };
  },
};
