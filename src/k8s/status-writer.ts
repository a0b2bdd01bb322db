/**
 * The one agent of a cluster that writes what users read with kubectl:
 * route status (Accepted, ResolvedRefs on each Service parent), the
 * Accepted condition of ebmesh's own policies, and Events on the objects the
 * mesh left out. Agents elect it with a Lease, so N nodes do not race on the
 * same status; an agent that is not the leader writes nothing.
 */
import { describeError } from '../errors.js';
import { KubeError, type KubeClient, type KubeObject } from './client.js';
import { CONTROLLER_NAME, mergeParents, routeParentStatuses, type Condition, type RouteParentStatus, type ServicePorts } from './route-status.js';
import { API_VERSION, type Problem } from './translate.js';

const LEASE_SECONDS = 15;
const RENEW_MS = 5000;

/** A Lease in `namespace`: held by one identity at a time, taken over once it expires. */
export class LeaseElector {
  leader = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly client: KubeClient, private readonly namespace: string, private readonly name: string, readonly identity: string, private readonly onChange: (leader: boolean) => void) {}

  private path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.namespace}/leases/${this.name}`;
  }

  private set(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.onChange(leader);
  }

  async tick(): Promise<void> {
    const now = new Date();
    const stamp = now.toISOString().replace('Z', '000Z'); // MicroTime: microseconds
    type Lease = KubeObject & { spec?: { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number; leaseTransitions?: number } };
    try {
      let lease: Lease | undefined;
      try {
        lease = await this.client.request<Lease>('GET', this.path());
      } catch (e) {
        if (!(e instanceof KubeError && e.status === 404)) throw e;
      }
      if (!lease) {
        await this.client.request('POST', `/apis/coordination.k8s.io/v1/namespaces/${this.namespace}/leases`, {
          apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.name, namespace: this.namespace },
          spec: { holderIdentity: this.identity, leaseDurationSeconds: LEASE_SECONDS, acquireTime: stamp, renewTime: stamp, leaseTransitions: 0 },
        });
        this.set(true);
        return;
      }
      const s = lease.spec ?? {};
      const expired = !s.renewTime || Date.parse(s.renewTime) + (s.leaseDurationSeconds ?? LEASE_SECONDS) * 1000 < now.getTime();
      if (s.holderIdentity !== this.identity && !expired) {
        this.set(false);
        return;
      }
      const taking = s.holderIdentity !== this.identity;
      await this.client.request('PUT', this.path(), {
        ...lease,
        spec: { ...s, holderIdentity: this.identity, leaseDurationSeconds: LEASE_SECONDS, renewTime: stamp, ...(taking ? { acquireTime: stamp, leaseTransitions: (s.leaseTransitions ?? 0) + 1 } : {}) },
      });
      this.set(true);
    } catch (e) {
      // A conflict means someone else renewed or took it first; anything else, we cannot tell: stand down either way.
      this.set(false);
      if (!(e instanceof KubeError && e.status === 409)) process.stderr.write(`status lease: ${describeError(e)}\n`);
    }
  }

  start(): void {
    void this.tick();
    this.timer = setInterval(() => void this.tick(), RENEW_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** What the writer reads from the Kubernetes source. */
export interface StatusInputs {
  /** The route objects as the API server has them. */
  routes(): Array<{ kind: 'HTTPRoute' | 'GRPCRoute'; object: KubeObject }>;
  /** ebmesh's own policy objects. */
  policies(): Array<{ kind: 'TrafficPolicy' | 'AuthorizationPolicy'; object: KubeObject }>;
  services(): ServicePorts;
  /** What the last translation left out, and why. */
  problems(): readonly Problem[];
  /** The API object a problem is about (for an Event's regarding). */
  objectOf(p: Problem): KubeObject | undefined;
}

const RESOURCE = { HTTPRoute: 'httproutes', GRPCRoute: 'grpcroutes', TrafficPolicy: 'trafficpolicies', AuthorizationPolicy: 'authorizationpolicies' } as const;
const GROUP = { HTTPRoute: 'gateway.networking.k8s.io/v1', GRPCRoute: 'gateway.networking.k8s.io/v1', TrafficPolicy: 'ebmesh.io/v1alpha1', AuthorizationPolicy: 'ebmesh.io/v1alpha1' } as const;

/**
 * generateName for an Event about the object NAME. The API server checks a
 * generateName as a DNS subdomain that may end in "-" (not in "."), then
 * keeps at most 58 characters of it before its 5 random ones.
 */
export function eventNamePrefix(name: string): string {
  return `${name.slice(0, 57).replace(/[^a-z0-9]+$/, '')}-`;
}

export class StatusWriter {
  private pending: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Events already written: one per object version and message. */
  private readonly told = new Set<string>();
  readonly stats = { statusWrites: 0, events: 0, errors: 0 };
  lastError: string | undefined;

  constructor(private readonly client: KubeClient, private readonly inputs: StatusInputs, private readonly elector: LeaseElector) {}

  /** After a change: write soon (changes come in bursts). */
  schedule(): void {
    if (!this.elector.leader || this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.running ??= this.pass().finally(() => (this.running = undefined));
    }, 300);
    this.pending.unref();
  }

  private async put(kind: keyof typeof RESOURCE, o: KubeObject, status: Record<string, unknown>): Promise<void> {
    const ns = o.metadata.namespace ?? 'default';
    const path = `/apis/${GROUP[kind]}/namespaces/${ns}/${RESOURCE[kind]}/${o.metadata.name}/status`;
    try {
      await this.client.request('PUT', path, { ...o, apiVersion: GROUP[kind], kind, status });
      this.stats.statusWrites++;
    } catch (e) {
      // 409: the object changed meanwhile; its new version brings another pass.
      if (!(e instanceof KubeError && (e.status === 409 || e.status === 404))) throw e;
    }
  }

  async pass(): Promise<void> {
    if (!this.elector.leader) return;
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const problems = this.inputs.problems();
    const about = (kind: string, o: KubeObject) => problems.filter((p) => p.kind === kind && p.name === o.metadata.name && (p.namespace ?? 'default') === (o.metadata.namespace ?? 'default'));
    try {
      const services = this.inputs.services();
      for (const { kind, object } of this.inputs.routes()) {
        const mine = routeParentStatuses(object, about(kind, object), services);
        const current = (object as { status?: { parents?: RouteParentStatus[] } }).status?.parents;
        const merged = mergeParents(current, mine, now);
        if (merged) await this.put(kind, object, { ...((object as { status?: object }).status ?? {}), parents: merged });
      }
      for (const { kind, object } of this.inputs.policies()) {
        const p = about(kind, object);
        const accepted: Condition = {
          type: 'Accepted', status: p.length ? 'False' : 'True', reason: p.length ? 'Invalid' : 'Accepted',
          message: p.length ? p.map((x) => (x.field ? `${x.field}: ${x.message}` : x.message)).join('; ') : `${CONTROLLER_NAME} applies it`,
          ...(object.metadata.generation !== undefined ? { observedGeneration: object.metadata.generation } : {}),
        };
        const cur = (object as { status?: { conditions?: Condition[] } }).status?.conditions?.find((c) => c.type === 'Accepted');
        if (cur && cur.status === accepted.status && cur.message === accepted.message && cur.observedGeneration === accepted.observedGeneration) continue;
        await this.put(kind, object, { conditions: [{ ...accepted, lastTransitionTime: cur?.status === accepted.status ? cur.lastTransitionTime ?? now : now }] });
      }
      await this.events(problems.filter((p) => !(p.kind in RESOURCE)));
      this.lastError = undefined;
    } catch (e) {
      this.stats.errors++;
      this.lastError = describeError(e);
      process.stderr.write(`status: ${this.lastError}\n`);
    }
  }

  /** An Event (type Warning, reason Invalid) on each object left out, once per version of it. */
  private async events(problems: readonly Problem[]): Promise<void> {
    for (const p of problems) {
      const o = this.inputs.objectOf(p);
      if (!o) continue;
      const key = `${o.metadata.uid}/${o.metadata.resourceVersion}/${p.field}/${p.message}`;
      if (this.told.has(key)) continue;
      const ns = o.metadata.namespace ?? 'default';
      await this.client.request('POST', `/apis/events.k8s.io/v1/namespaces/${ns}/events`, {
        apiVersion: 'events.k8s.io/v1', kind: 'Event',
        metadata: { generateName: eventNamePrefix(o.metadata.name), namespace: ns },
        eventTime: new Date().toISOString().replace('Z', '000Z'),
        reportingController: CONTROLLER_NAME, reportingInstance: this.elector.identity,
        action: 'Validate', reason: 'Invalid', type: 'Warning',
        regarding: { apiVersion: API_VERSION[p.kind] ?? o.apiVersion, kind: p.kind, name: o.metadata.name, namespace: o.metadata.namespace, uid: o.metadata.uid },
        note: `ebmesh leaves this ${p.kind} out: ${p.field ? `${p.field}: ` : ''}${p.message}`.slice(0, 1024),
      });
      this.told.add(key);
      this.stats.events++;
    }
  }

  stop(): void {
    clearTimeout(this.pending);
  }
}
