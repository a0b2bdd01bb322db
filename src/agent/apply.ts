/**
 * Act: one node's plan (plan.ts) carried out, in the one order that keeps
 * every step safe for traffic already flowing:
 *
 *  1. the host's safety routes: nothing for the service or pod CIDRs (of
 *     either family) leaves the host untranslated;
 *  2. the lab workloads' cgroups, empty, so that step 3 knows their ids;
 *  3. the policy maps (identities, tables, endpoints): every cgroup has its
 *     identity before a process runs in it (step 8);
 *  4. the node proxy (started or adopted, then configured, its tunnel
 *     endpoint judging with step 3's tables): it listens before anything is
 *     steered to it;
 *  5. the kernel's cross-node tunnel steering, once the proxy listens;
 *  6. the load balancer's maps (an ordered diff: backends, slots, counts);
 *  7. the same-node shortcut's settings;
 *  8. the lab: its bridge, then its processes started and stopped;
 *  9. adopted cgroups attached (and those no longer adopted detached); the
 *     host's sockets get the load balancer where the mesh is the node's
 *     service proxy;
 * 10. strict mTLS tables, the lab's hosts files, observe's name tables.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupId, ensureCgroup } from '../host/cgroup.js';
import { writePrivateFile } from '../host/private-files.js';
import type { InstancePaths } from '../paths.js';
import { ensureBridge, ensureUnreachable, removeUnreachable } from '../host/network.js';
import { applyMtlsTables, applyTunnelDestinations } from './mtls-maps.js';
import { planLb } from './lb-plan.js';
import type { Datapath } from './datapath.js';
import type { PolicyAgent } from '../policy/policy-agent.js';
import type { NodeProxyWiring } from './node-proxy/wiring.js';
import type { Lab } from '../lab/runtime.js';
import type { Observer } from '../observe/observer.js';
import { HOST_LB_PROGRAMS, HOST_LINK_TAG, type NodePlan } from './plan.js';
import { formatCidr, type Cidr } from '../net/ipam.js';

/** The node's parts the plan acts on. */
export interface NodeParts {
  datapath: Datapath;
  policy: PolicyAgent;
  proxy: NodeProxyWiring;
  lab: Lab;
  observer: Observer | undefined;
  bridge: LabBridge;
  routes: HostRoutes;
}

/** Where an instance records the safety routes it made: teardown removes them even when no MeshConfig says them (a cluster's agent takes its ranges from flags). */
export function safetyRoutesFile(paths: Pick<InstancePaths, 'stateDir'>): string {
  return join(paths.stateDir, 'safety-routes.json');
}

/** The routes recorded in FILE; none when it is missing or unreadable. */
export function recordedSafetyRoutes(file: string): string[] {
  try {
    const v: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return Array.isArray(v) ? v.filter((c): c is string => typeof c === 'string') : [];
  } catch {
    return [];
  }
}

/**
 * The unreachable routes this node keeps on the host. A pass only acts when
 * the CIDRs change (each route is a host command); `recheck` puts them back
 * whatever happened, for the periodic check (anyone may remove them). With a
 * record file, the routes are written down as made, and those a previous
 * agent recorded and this one no longer wants are removed.
 */
export class HostRoutes {
  private current: string[];
  private applied = false;

  constructor(private readonly record?: string) {
    this.current = record ? recordedSafetyRoutes(record) : [];
  }

  ensure(want: readonly string[]): void {
    // The first pass makes every route whatever the record says: the host may have lost them (a reboot).
    if (this.applied && want.length === this.current.length && want.every((c, i) => c === this.current[i])) return;
    for (const old of this.current) if (!want.includes(old)) removeUnreachable(old);
    for (const c of want) ensureUnreachable(c);
    this.current = [...want];
    this.applied = true;
    if (this.record) writePrivateFile(this.record, JSON.stringify(this.current));
  }

  recheck(): void {
    for (const c of this.current) ensureUnreachable(c);
  }
}

/** The lab's bridge, made once per subnet (or pair, dual-stack) rather than checked on every pass. */
export class LabBridge {
  private made: string | undefined;

  constructor(readonly name: string) {}

  ensure(subnet: Cidr, subnet6?: Cidr): void {
    const key = `${formatCidr(subnet)} ${subnet6 ? formatCidr(subnet6) : ''}`;
    if (this.made === key) return;
    ensureBridge(this.name, subnet, subnet6);
    this.made = key;
  }
}

export interface ApplyReport {
  lbOps: number;
  policyOps: number;
}

export async function applyPlan(plan: NodePlan, n: NodeParts): Promise<ApplyReport> {
  n.routes.ensure(plan.hostRoutes);
  for (const w of plan.lab) ensureCgroup(n.lab.cgroupOf(w));
  const policyOps = n.policy.apply(plan.policy, cgroupId);
  await n.proxy.apply(plan.proxy, plan.podSubnet, n.datapath, plan.podSubnet6);
  const xnode = n.datapath.objectWith('ebm_xnode_dsts');
  if (xnode) applyTunnelDestinations(xnode, n.proxy.address ? plan.tunnelDsts : []);
  const lbOps = planLb(n.datapath.lb.current(), plan.frontends);
  n.datapath.lb.apply(lbOps);
  n.datapath.configureShortcut(plan.shortcut);
  if (plan.bridge) n.bridge.ensure(plan.podSubnet, plan.podSubnet6);
  await n.lab.sync(plan.lab);
  const adopted = new Set<string>();
  for (const a of plan.adopt) {
    adopted.add(a.tag);
    n.datapath.attach(a.cgroup, a.tag);
  }
  for (const tag of n.datapath.attachedTags()) {
    if (tag.startsWith('adopt_') && !adopted.has(tag)) n.datapath.detach(tag);
  }
  if (plan.hostLb) n.datapath.attach(plan.hostLb, HOST_LINK_TAG, HOST_LB_PROGRAMS);
  const mtls = n.datapath.objectWith('ebm_mtls_workloads');
  if (mtls) applyMtlsTables(mtls, plan.mtls);
  n.lab.writeHosts(plan.hosts.workloads, plan.hosts.services, plan.hosts.domain);
  // After the policy step: flows carry the identities it allocated.
  n.observer?.update(plan.snapshot, plan.frontends);
  return { lbOps: lbOps.length, policyOps };
}
