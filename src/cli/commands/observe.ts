/** `ebmesh observe` and `ebmesh top`: the node's flows and golden metrics. */
import { parseArgs } from 'node:util';
import { instanceClient } from '../client.js';
import { nodeApi } from '../../api/node.js';
import { table } from '../table.js';
import { EbmeshError } from '../../errors.js';
import { FILTER_KEYS, flowLine, type Flow } from '../../observe/flow.js';
import type { GoldenRow } from '../../observe/golden.js';
import type { Command, CommandContext } from '../command.js';
import { nodePaths, type InstancePaths } from '../../paths.js';
import { readCluster } from '../../lab/cluster-state.js';

/** Whose flows: the node daemon's, or on a multi-node lab the agent of --node. */
function target(ctx: CommandContext, node: string | undefined): InstancePaths {
  const lab = readCluster(ctx.paths);
  if (node === undefined) {
    if (lab) throw new EbmeshError('EBMESH_USAGE', `"${ctx.paths.instance}" is a multi-node lab: say which node's flows`, { hint: `--node ${lab.nodes.join('|')}` });
    return ctx.paths;
  }
  if (!lab) throw new EbmeshError('EBMESH_USAGE', `--node ${node}: "${ctx.paths.instance}" is a single node, not a multi-node lab`);
  if (!lab.nodes.includes(node)) throw new EbmeshError('EBMESH_USAGE', `--node ${node}: no such node (the lab has ${lab.nodes.join(', ')})`);
  return nodePaths(ctx.paths.instance, node);
}

const filterOptions = Object.fromEntries(FILTER_KEYS.map((k) => [k, { type: 'string' as const }]));

export const observe: Command = {
  name: 'observe',
  summary: 'show connections, drops and HTTP requests on this node, as the kernel sees them',
  usage: 'observe [--node NODE] [-f] [--last N] [--from W] [--to W|SVC] [--namespace NS] [--verdict V] [--protocol http|tcp|udp] [--status 5xx|404] [--type T] [--reason R[,R|policy-*]] [-o json]',
  async run(ctx) {
    const { values } = parseArgs({
      args: ctx.args,
      options: {
        follow: { type: 'boolean', short: 'f' }, last: { type: 'string' }, output: { type: 'string', short: 'o' }, node: { type: 'string' },
        ...filterOptions,
      },
    });
    if (values.output && values.output !== 'json') throw new EbmeshError('EBMESH_USAGE', `-o ${values.output}: only json is known`);
    const filter: Partial<Record<(typeof FILTER_KEYS)[number], string>> = {};
    for (const k of FILTER_KEYS) {
      const v = (values as Record<string, unknown>)[k];
      if (typeof v === 'string') filter[k] = v;
    }
    const client = instanceClient(target(ctx, values.node));
    const json = values.output === 'json';
    const print = (f: Flow | { lost: number }) => {
      if (json) ctx.out(JSON.stringify(f));
      else if ('lost' in f) ctx.out(`… ${f.lost} flows skipped: this reader fell behind`);
      else ctx.out(flowLine(f));
    };
    if (values.follow) {
      // Until the node ends the stream or the user interrupts.
      const ctl = new AbortController();
      const stop = () => ctl.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await client.follow(nodeApi.followFlows, { ...filter, follow: '1', last: Number(values.last ?? 0) }, print, ctl.signal);
      return 0;
    }
    const r = await client.call(nodeApi.flows, { ...filter, last: Number(values.last ?? 20) });
    for (const f of r.flows) print(f);
    return 0;
  },
};

export function renderTop(rows: GoldenRow[], window: number): string {
  return table(['SERVICE', 'RPS', 'SUCCESS', 'P50', 'P99', `REQUESTS(${window}s)`],
    rows.map((r) => [r.service, r.rps.toFixed(1), `${(r.successRate * 100).toFixed(2)}%`, `${r.p50Ms.toFixed(2)}ms`, `${r.p99Ms.toFixed(2)}ms`, r.requests]));
}

export const top: Command = {
  name: 'top',
  summary: 'golden metrics per service (request rate, success rate, p50/p99 latency), refreshing',
  usage: 'top [--window SECONDS] [--once] [-o json]',
  async run(ctx) {
    const { values } = parseArgs({ args: ctx.args, options: { window: { type: 'string', default: '10' }, once: { type: 'boolean' }, output: { type: 'string', short: 'o' } } });
    const w = Number(values.window);
    const get = () => instanceClient(ctx.paths).call(nodeApi.top, { window: w });
    if (values.once || values.output === 'json' || !process.stdout.isTTY) {
      const r = await get();
      ctx.out(values.output === 'json' ? JSON.stringify(r, null, 2) : renderTop(r.services, w));
      return 0;
    }
    let stop = false;
    process.once('SIGINT', () => (stop = true));
    while (!stop) {
      const r = await get();
      process.stdout.write(`\x1b[H\x1b[2J${new Date().toISOString()}  node "${ctx.paths.instance}", last ${w}s (Ctrl-C to quit)\n\n${renderTop(r.services, w)}\n`);
      await new Promise((res) => setTimeout(res, 1000));
    }
    return 0;
  },
};
