/**
 * What ebmesh tells a route's author, the Gateway API way: for each Service
 * parent of an HTTPRoute or GRPCRoute, an entry in status.parents with the
 * conditions Accepted and ResolvedRefs, under ebmesh's controller name.
 * Pure: the writer (status-writer.ts) puts it on the objects.
 */
import type { KubeObject } from './client.js';
import type { Problem } from './translate.js';

export const CONTROLLER_NAME = 'ebmesh.io/mesh';

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

export interface ParentRef {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
  sectionName?: string;
}

export interface RouteParentStatus {
  parentRef: ParentRef;
  controllerName: string;
  conditions: Condition[];
}

/** The Services the cluster has, with their ports. */
export type ServicePorts = ReadonlyMap<string, ReadonlySet<number>>;

const isServiceRef = (p: ParentRef) => p.kind === 'Service' && (p.group === undefined || p.group === '' || p.group === 'core');

function cond(type: string, ok: boolean, reason: string, message: string, generation: number | undefined): Condition {
  return { type, status: ok ? 'True' : 'False', reason, message, ...(generation !== undefined ? { observedGeneration: generation } : {}) };
}

/**
 * The status ebmesh gives each Service parent of a route. `problems`: what
 * the translation refused in this route (its schema); `services`: the
 * Services that exist.
 */
export function routeParentStatuses(route: KubeObject, problems: readonly Problem[], services: ServicePorts): RouteParentStatus[] {
  const spec = (route as { spec?: { parentRefs?: ParentRef[]; rules?: Array<{ backendRefs?: Array<{ group?: string; kind?: string; name: string; namespace?: string; port?: number }> }> } }).spec ?? {};
  const ns = route.metadata.namespace ?? 'default';
  const gen = route.metadata.generation;
  const invalid = problems.map((p) => (p.field ? `${p.field}: ${p.message}` : p.message)).join('; ');
  const missing: string[] = [];
  const refused: string[] = [];
  for (const rule of spec.rules ?? []) {
    for (const b of rule.backendRefs ?? []) {
      const kind = b.kind ?? 'Service';
      const bns = b.namespace ?? ns;
      if (kind !== 'Service' || (b.group !== undefined && b.group !== '' && b.group !== 'core')) { refused.push(`${b.group ?? ''}/${kind} ${b.name}`); continue; }
      // Another namespace's Service needs a ReferenceGrant, which ebmesh does not read: refused.
      if (bns !== ns) { refused.push(`Service ${bns}/${b.name}`); continue; }
      const ports = services.get(`${bns}/${b.name}`);
      if (!ports || (b.port !== undefined && !ports.has(b.port))) missing.push(`Service ${bns}/${b.name}${b.port !== undefined ? ` port ${b.port}` : ''}`);
    }
  }
  const out: RouteParentStatus[] = [];
  for (const parentRef of spec.parentRefs ?? []) {
    if (!isServiceRef(parentRef)) continue;
    const pns = parentRef.namespace ?? ns;
    const ports = services.get(`${pns}/${parentRef.name}`);
    let accepted: Condition;
    if (invalid) accepted = cond('Accepted', false, 'UnsupportedValue', invalid, gen);
    else if (!ports) accepted = cond('Accepted', false, 'NoMatchingParent', `Service ${pns}/${parentRef.name} does not exist`, gen);
    else if (parentRef.port !== undefined && !ports.has(parentRef.port)) accepted = cond('Accepted', false, 'NoMatchingParent', `Service ${pns}/${parentRef.name} has no port ${parentRef.port}`, gen);
    else accepted = cond('Accepted', true, 'Accepted', 'the node proxy routes this Service\'s traffic by this route', gen);
    const resolved = refused.length
      ? cond('ResolvedRefs', false, 'RefNotPermitted', `not a Service of the route's namespace: ${refused.join(', ')}`, gen)
      : missing.length
        ? cond('ResolvedRefs', false, 'BackendNotFound', `no such ${missing.join(', ')}: its share of requests is answered 500`, gen)
        : cond('ResolvedRefs', true, 'ResolvedRefs', 'every backend exists', gen);
    out.push({ parentRef, controllerName: CONTROLLER_NAME, conditions: [accepted, resolved] });
  }
  return out;
}

/**
 * A route's status.parents with ours replaced by `mine` and everyone else's
 * kept; a condition keeps its lastTransitionTime while its status does not
 * change. Undefined when nothing would change (no write needed).
 */
export function mergeParents(current: readonly RouteParentStatus[] | undefined, mine: readonly RouteParentStatus[], now: string): RouteParentStatus[] | undefined {
  const old = (current ?? []).filter((p) => p.controllerName === CONTROLLER_NAME);
  const others = (current ?? []).filter((p) => p.controllerName !== CONTROLLER_NAME);
  const key = (r: ParentRef) => JSON.stringify([r.namespace ?? '', r.name, r.port ?? 0, r.sectionName ?? '']);
  const next = mine.map((m) => {
    const prev = old.find((o) => key(o.parentRef) === key(m.parentRef));
    return {
      ...m,
      conditions: m.conditions.map((c) => {
        const was = prev?.conditions.find((x) => x.type === c.type);
        return { ...c, lastTransitionTime: was && was.status === c.status && was.lastTransitionTime ? was.lastTransitionTime : now };
      }),
    };
  });
  const strip = (l: readonly RouteParentStatus[]) => JSON.stringify(l.map((p) => ({ ...p, conditions: p.conditions.map(({ lastTransitionTime: _t, ...c }) => c) })));
  if (strip(next) === strip(old) && next.length === old.length) return undefined;
  return [...others, ...next];
}
