import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { instanceClient } from '../client.js';
import { meshApi } from '../../api/mesh.js';
import { table } from '../table.js';
import { EbmeshError } from '../../errors.js';
import type { ApplyResult, WorkloadStatus } from '../../controlplane/index.js';
import type { AnyResource } from '../../resources/index.js';
import type { Command, CommandContext } from '../command.js';

function readInput(file: string): { text: string; file: string } {
  try {
    return { text: file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8'), file: file === '-' ? '<stdin>' : file };
  } catch (e) {
    throw new EbmeshError('EBMESH_FILE', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export async function applyFiles(ctx: CommandContext, files: string[]): Promise<ApplyResult[]> {
  const all: ApplyResult[] = [];
  for (const f of files) {
    const { results } = await instanceClient(ctx.paths).call(meshApi.apply, readInput(f));
    all.push(...(results as ApplyResult[]));
  }
  return all;
}

export const apply: Command = {
  name: 'apply',
  summary: 'create or update resources from YAML files',
  usage: 'apply -f FILE [-f FILE…] [-o json]',
  async run(ctx) {
    const { values } = parseArgs({ args: ctx.args, options: { file: { type: 'string', short: 'f', multiple: true }, output: { type: 'string', short: 'o' } } });
    if (!values.file?.length) throw new EbmeshError('EBMESH_USAGE', 'apply needs -f FILE');
    const results = await applyFiles(ctx, values.file);
    ctx.out(values.output === 'json' ? JSON.stringify(results, null, 2) : results.map((r) => `${r.resource} ${r.action}`).join('\n'));
    return 0;
  },
};

export const del: Command = {
  name: 'delete',
  summary: 'delete the resources of YAML files, or KIND NAME',
  usage: 'delete -f FILE | delete KIND NAME [-n NAMESPACE]',
  async run(ctx) {
    const { values, positionals } = parseArgs({
      args: ctx.args, allowPositionals: true,
      options: { file: { type: 'string', short: 'f', multiple: true }, namespace: { type: 'string', short: 'n' } },
    });
    const results: ApplyResult[] = [];
    if (values.file?.length) {
      for (const f of values.file) results.push(...(await instanceClient(ctx.paths).call(meshApi.delete, readInput(f))).results as ApplyResult[]);
    } else if (positionals.length === 2) {
      const [kind = '', name = ''] = positionals;
      const ref = { kind, name, ...(values.namespace ? { namespace: values.namespace } : {}) };
      results.push(...(await instanceClient(ctx.paths).call(meshApi.delete, { refs: [ref] })).results as ApplyResult[]);
    } else throw new EbmeshError('EBMESH_USAGE', `usage: ebmesh ${this.usage}`);
    ctx.out(results.map((r) => `${r.resource} ${r.action}`).join('\n'));
    return results.some((r) => r.action === 'not found') ? 1 : 0;
  },
};

type Item = AnyResource & { status?: WorkloadStatus };
type Row = Array<string | number | undefined>;

const labels = (l: Record<string, string> | undefined) => Object.entries(l ?? {}).map(([k, v]) => `${k}=${v}`).join(',');

/** A row per kind that has columns of its own; every other kind shows its kind, namespace and name. */
function rowOf(i: Item): Row | undefined {
  if (i.kind === 'Service') {
    return [i.metadata.namespace, i.metadata.name, i.spec.clusterIP,
      i.spec.ports.map((p) => `${p.port}${p.targetPort !== undefined && p.targetPort !== p.port ? `:${p.targetPort}` : ''}/${p.protocol}`).join(','),
      labels(i.spec.selector), i.spec.sessionAffinity];
  }
  if (i.kind === 'Workload') {
    return [i.metadata.namespace, i.metadata.name, i.spec.ip ?? i.status?.ip, i.spec.adopt ? 'Adopted' : i.status?.phase ?? 'Pending',
      i.spec.adopt ? 'yes' : i.status?.ready ? 'yes' : 'no', labels(i.metadata.labels)];
  }
  return undefined;
}

const HEADERS: Record<string, string[]> = {
  Service: ['NAMESPACE', 'NAME', 'CLUSTER-IP', 'PORTS', 'SELECTOR', 'AFFINITY'],
  Workload: ['NAMESPACE', 'NAME', 'IP', 'PHASE', 'READY', 'LABELS'],
};

export const get: Command = {
  name: 'get',
  summary: 'list resources of a kind',
  usage: 'get KIND [NAME] [-n NAMESPACE] [-o json|yaml]',
  async run(ctx) {
    const { values, positionals } = parseArgs({
      args: ctx.args, allowPositionals: true,
      options: { namespace: { type: 'string', short: 'n' }, output: { type: 'string', short: 'o' } },
    });
    const [kind, name] = positionals;
    if (!kind) throw new EbmeshError('EBMESH_USAGE', `usage: ebmesh ${this.usage}`);
    const { items } = await instanceClient(ctx.paths).call(meshApi.resources, { kind, ...(name ? { name } : {}), ...(values.namespace ? { namespace: values.namespace } : {}) });
    if (values.output === 'json') ctx.out(JSON.stringify(name ? items[0] : items, null, 2));
    else if (values.output === 'yaml') {
      // Loaded here only: the yaml package takes 0.1 to 0.4 s to load, on every command (apply included) otherwise.
      const { stringify } = await import('yaml');
      ctx.out(items.map((i) => stringify(i)).join('---\n'));
    }
    else {
      const k = items[0]?.kind;
      const headers = (k && HEADERS[k]) || ['KIND', 'NAMESPACE', 'NAME'];
      const rows = items.map((i) => rowOf(i) ?? [i.kind, (i.metadata as { namespace?: string }).namespace, i.metadata.name]);
      ctx.out(items.length ? table(headers, rows) : `no ${kind} found`);
    }
    return 0;
  },
};
