/**
 * Values read back from a store are checked again before anything acts on
 * them. apply validated them on the way in, but the store is not the only
 * way in: whoever can write a key in etcd (or edit store.json) could hand an
 * agent a Workload whose command it runs as root, or a status whose cgroup it
 * kills. So every resource is parsed again with its kind's schema and must
 * sit under its own key; every workload status must have the status's
 * shape. What fails is left out of the snapshot and reported (the control
 * plane's and the node's status, and their logs), never acted on.
 *
 * A node's view of another node's workload is stripped by the control plane
 * (nodes.ts remoteView: no command, env, files or cgroup); such an entry is
 * checked as that, and can never carry a command.
 *
 * Store values are frozen and shared (store.ts): each is checked once, and
 * the same stored object always gives the same checked object, so readers
 * that compare objects to find what changed still can.
 */
import { z } from 'zod';
import { describeZod } from '../api/route.js';
import { isKindName, kinds, resourceKey, workloadSpecFields, type AnyResource } from '../resources/index.js';
import { ipv4Address, ipv6Address, metadata } from '../resources/schema-common.js';
import { deepFreeze } from '../store/index.js';

/** A key the snapshot left out, and why. */
export interface RejectedEntry {
  key: string;
  problem: string;
}

export const WorkloadStatusSchema = z.object({
  phase: z.enum(['Pending', 'Running', 'Failed', 'Succeeded']),
  /** Running and answering on its first TCP port (or has none). */
  ready: z.boolean().optional(),
  /** Hash of the spec the process was started from. */
  sig: z.string().optional(),
  ip: ipv4Address.optional(),
  /** Its IPv6 address, where a source other than the lab gives one (the lab's is in the spec). */
  ipv6: ipv6Address.optional(),
  pid: z.number().int().positive().optional(),
  netns: z.string().optional(),
  cgroup: z.string().optional(),
  message: z.string().optional(),
  startedAt: z.string().optional(),
  node: z.string().optional(),
});

/** Another node's workload as a node's view holds it: where it is and what it serves, nothing to run. */
export const RemoteWorkloadView = z.object({
  apiVersion: z.literal('ebmesh.io/v1alpha1'),
  kind: z.literal('Workload'),
  metadata,
  spec: workloadSpecFields.pick({ serviceAccount: true, node: true, ip: true, ipv6: true, ports: true, external: true }).strict(),
}).strict();

type Checked<T> = { ok: T } | { problem: string };

const full = new WeakMap<object, Checked<AnyResource>>();
const remote = new WeakMap<object, Checked<AnyResource>>();
const statuses = new WeakMap<object, Checked<z.infer<typeof WorkloadStatusSchema>>>();

function memo<T>(cache: WeakMap<object, Checked<T>>, value: unknown, check: (v: unknown) => Checked<T>): Checked<T> {
  if (typeof value !== 'object' || value === null) return check(value);
  let c = cache.get(value);
  if (!c) {
    c = check(value);
    if ('ok' in c) deepFreeze(c.ok);
    cache.set(value, c);
  }
  return c;
}

function parseWith<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, value: unknown, what: string): Checked<T> {
  const r = schema.safeParse(value);
  return r.success ? { ok: r.data } : { problem: describeZod(r.error, what) };
}

function checkResource(value: unknown, asRemoteView: boolean): Checked<AnyResource> {
  const kind = (value as { kind?: unknown } | null)?.kind;
  if (typeof kind !== 'string' || !isKindName(kind)) return { problem: `not a resource of a known kind (kind: ${JSON.stringify(kind)})` };
  const schema = asRemoteView && kind === 'Workload' ? RemoteWorkloadView : kinds[kind];
  return parseWith(schema as z.ZodType<AnyResource, z.ZodTypeDef, unknown>, value, kind);
}

/**
 * The resource stored under KEY (under RESOURCES), checked: its schema, and
 * KEY must be its own. asRemoteView: a Workload of another node, as a node's view holds it.
 */
export function checkStoredResource(key: string, value: unknown, resourcesPrefix: string, asRemoteView = false): Checked<AnyResource> {
  const c = memo(asRemoteView ? remote : full, value, (v) => checkResource(v, asRemoteView));
  if (!('ok' in c)) return c;
  const own = resourcesPrefix + resourceKey(c.ok);
  return own === key ? c : { problem: `holds ${own.slice(resourcesPrefix.length)}, not what its key names` };
}

export function checkStoredStatus(value: unknown): Checked<z.infer<typeof WorkloadStatusSchema>> {
  return memo(statuses, value, (v) => parseWith(WorkloadStatusSchema, v, 'status'));
}

/** Says each rejected entry once while it stays rejected (a reconcile pass reads the store often). */
export class RejectedLog {
  private said = new Set<string>();

  constructor(private readonly write: (line: string) => void) {}

  note(rejected: readonly RejectedEntry[] | undefined): void {
    const now = new Set<string>();
    for (const r of rejected ?? []) {
      const line = `${r.key}: ${r.problem}`;
      now.add(line);
      if (!this.said.has(line)) this.write(`store: left out ${line}\n`);
    }
    this.said = now;
  }
}
