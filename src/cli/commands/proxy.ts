/**
 * `ebmesh proxy restart`: a hitless restart (or, after a rebuild, upgrade)
 * of a node's proxy: the agent starts the next generation, switches the
 * kernel's steering to it and drains the old one (src/agent/node-proxy/supervisor.ts).
 */
import { parseArgs } from 'node:util';
import { EbmeshError } from '../../errors.js';
import { nodePaths, validInstance } from '../../paths.js';
import { instanceClient } from '../client.js';
import type { Command } from '../command.js';
import { meshApi } from '../../api/mesh.js';
import { nodeApi } from '../../api/node.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const proxy: Command = {
  name: 'proxy',
  summary: "restart a node's proxy without dropping a connection (the old one drains)",
  usage: 'proxy restart [--node NAME] [--no-wait] [-o json]',
  async run(ctx) {
    const { values, positionals } = parseArgs({
      args: ctx.args, allowPositionals: true,
      options: { node: { type: 'string' }, 'no-wait': { type: 'boolean' }, output: { type: 'string', short: 'o' } },
    });
    if (positionals[0] !== 'restart' || positionals.length !== 1) throw new EbmeshError('EBMESH_USAGE', `usage: ebmesh ${this.usage}`);
    if (values.node !== undefined && !validInstance(values.node)) throw new EbmeshError('EBMESH_USAGE', `--node: invalid node name ${JSON.stringify(values.node)}`);
    const paths = values.node ? nodePaths(ctx.paths.instance, values.node) : ctx.paths;
    if (!values.node) {
      // A multi-node mesh answers here with its control plane, which runs no proxy: each node has its own.
      const st = await instanceClient(paths).call(meshApi.status, {});
      if (st.role === 'controlplane') throw new EbmeshError('EBMESH_USAGE', `mesh "${ctx.paths.instance}" has several nodes, each with its own proxy: name one with --node (${st.nodes.map((n) => n.name).join(', ')})`);
    }
    const client = instanceClient(paths);
    let r = await client.call(nodeApi.proxyRestart, {});
    if (!values['no-wait']) {
      // The old generation reports its drain when its last connection ended, or at the deadline.
      let s = (await client.call(nodeApi.proxy, { limit: 0 })).status;
      const until = Date.now() + (s?.drainTimeoutMs ?? 0) + 5000;
      while (s?.lastHandover?.from.pid === r.from.pid && s.lastHandover.drainedMs === undefined && Date.now() < until) {
        await sleep(200);
        s = (await client.call(nodeApi.proxy, { limit: 0 })).status;
      }
      if (s?.lastHandover?.from.pid === r.from.pid) r = s.lastHandover;
    }
    if (values.output === 'json') ctx.out(JSON.stringify(r, null, 2));
    else {
      ctx.out(`node proxy: pid ${r.to.pid} on port ${r.to.port} took over from pid ${r.from.pid} (port ${r.from.port}) after ${r.readyMs} ms`);
      ctx.out(r.drainedMs === undefined ? `pid ${r.from.pid} is draining` : `pid ${r.from.pid} drained in ${r.drainedMs} ms, ${r.cut} connections cut at the deadline`);
    }
    return 0;
  },
};
