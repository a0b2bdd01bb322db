import { parseArgs } from 'node:util';
import { instanceClient } from '../client.js';
import { nodeApi } from '../../api/node.js';
import { table } from '../table.js';
import { EbmeshError } from '../../errors.js';
import type { Explanation } from '../../policy/index.js';
import type { Command } from '../command.js';

const USAGE = 'policy explain --from WORKLOAD --to WORKLOAD|SERVICE|ADDRESS[:PORT[/PROTO]] (an IPv6 address in brackets: [fd00::5]:80) [-o json] | policy drops [-o json]';

function show(e: Explanation): string {
  const to = e.service ? `${e.service.name ?? e.service.ip}:${e.service.port} -> ${'workload' in e.flow.to ? e.flow.to.workload : e.flow.to.ip}` : 'workload' in e.flow.to ? e.flow.to.workload : e.flow.to.ip;
  const from = 'workload' in e.flow.from ? e.flow.from.workload : e.flow.from.ip;
  const lines = [`${e.verdict.toUpperCase()}  ${from} -> ${to}:${e.flow.port}/${e.flow.proto}`];
  for (const side of [e.egress, e.ingress]) lines.push(`  ${side.verdict.padEnd(5)} ${side.text}`);
  for (const w of e.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}

export const policy: Command = {
  name: 'policy',
  summary: 'network policy: explain a flow, list recent drops',
  usage: USAGE,
  async run(ctx) {
    const [sub, ...rest] = ctx.args;
    const { values } = parseArgs({
      args: rest,
      options: { from: { type: 'string' }, to: { type: 'string' }, output: { type: 'string', short: 'o' } },
    });
    const json = values.output === 'json';
    if (sub === 'explain') {
      if (!values.from || !values.to) throw new EbmeshError('EBMESH_USAGE', `usage: ebmesh ${USAGE}`);
      const r = await instanceClient(ctx.paths).call(nodeApi.policyExplain, { from: values.from, to: values.to });
      ctx.out(json ? JSON.stringify(r.explanations, null, 2) : r.explanations.map(show).join('\n'));
      return r.explanations.every((e) => e.verdict === 'allow') ? 0 : 3;
    }
    if (sub === 'drops') {
      const r = await instanceClient(ctx.paths).call(nodeApi.policyDrops, {});
      if (json) { ctx.out(JSON.stringify(r, null, 2)); return 0; }
      ctx.out(Object.entries(r.counts).map(([k, v]) => `${k}: ${v}`).join('  '));
      const cols = ['hook', 'reason', 'proto', 'src', 'dst', 'policy', 'rule'] as const;
      ctx.out(table(cols.map((c) => c.toUpperCase()), r.events.slice(-50).map((e) => cols.map((c) => (e[c] === undefined ? undefined : String(e[c]))))));
      return 0;
    }
    throw new EbmeshError('EBMESH_USAGE', `usage: ebmesh ${USAGE}`);
  },
};
