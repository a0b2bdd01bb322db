/**
 * A Service's address families and VIPs, as Kubernetes decides them
 * (ipFamilyPolicy, ipFamilies, clusterIPs), given the mesh's ranges and
 * what the Service had before. Pure: apply (apply.ts) registers the VIPs
 * this returns, checks them against each other and allocates the missing
 * ones.
 *
 *  - ipFamilyPolicy defaults to SingleStack, or to RequireDualStack when
 *    two families or two VIPs are given (as upstream); a re-applied Service
 *    keeps the policy, families and VIPs it had unless it says otherwise.
 *  - The families are those given, else those of the VIPs given, else
 *    those it had, else the mesh's primary (IPv4); PreferDualStack adds the
 *    other family where the mesh has it, RequireDualStack requires it.
 *  - The primary family (the first) never changes; a family dropped
 *    (RequireDualStack to SingleStack) releases its VIP.
 */
import type { MeshConfigResource, ServiceResource } from '../resources/index.js';
import { familyName, type IpFamilyName } from '../resources/index.js';
import { ipFamilyOf } from '../resources/ip.js';

export type IpFamilyPolicy = NonNullable<ServiceResource['spec']['ipFamilyPolicy']>;

export interface ServiceFamilies {
  policy: IpFamilyPolicy;
  /** Primary first. */
  families: IpFamilyName[];
  /** The VIP per family when one was given or kept; absent ones are to be allocated. */
  vips: Partial<Record<IpFamilyName, string>>;
  problems: Array<{ field: string; message: string }>;
}

/** The families whose service ranges the mesh has: IPv4 always, IPv6 when dual-stack. */
export function meshFamilies(mesh: MeshConfigResource): IpFamilyName[] {
  return mesh.spec.serviceCIDRv6 ? ['IPv4', 'IPv6'] : ['IPv4'];
}

const other = (f: IpFamilyName): IpFamilyName => (f === 'IPv4' ? 'IPv6' : 'IPv4');
const familyOfIp = (ip: string): IpFamilyName => familyName(ipFamilyOf(ip) ?? 4);

export function serviceFamilies(svc: ServiceResource, prev: ServiceResource | undefined, mesh: MeshConfigResource): ServiceFamilies {
  const spec = svc.spec;
  const problems: ServiceFamilies['problems'] = [];
  const available = meshFamilies(mesh);
  const givenIps = spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : []);
  const given = spec.ipFamilies ?? (givenIps.length ? givenIps.map(familyOfIp) : undefined);
  const policy: IpFamilyPolicy = spec.ipFamilyPolicy
    ?? ((given?.length ?? 0) > 1 ? 'RequireDualStack' : undefined)
    ?? prev?.spec.ipFamilyPolicy
    ?? 'SingleStack';
  let families: IpFamilyName[] = [...(given ?? prev?.spec.ipFamilies ?? [available[0]!])];
  if (policy === 'SingleStack') families = families.slice(0, 1);
  else if (families.length === 1 && (policy === 'RequireDualStack' || available.includes(other(families[0]!)))) families.push(other(families[0]!));

  if (policy === 'RequireDualStack' && available.length < 2) {
    problems.push({ field: 'spec.ipFamilyPolicy', message: 'RequireDualStack needs a dual-stack mesh: the MeshConfig has no serviceCIDRv6' });
  }
  families.forEach((f, i) => {
    if (!available.includes(f)) {
      problems.push({ field: spec.ipFamilies ? `spec.ipFamilies[${i}]` : 'spec.clusterIPs', message: `${f} needs the MeshConfig's serviceCIDRv6: the mesh is IPv4 only` });
    }
  });
  const primaryBefore = prev?.spec.ipFamilies?.[0] ?? (prev?.spec.clusterIP ? familyOfIp(prev.spec.clusterIP) : undefined);
  if (primaryBefore && families[0] !== primaryBefore) {
    problems.push({ field: 'spec.ipFamilies', message: `the primary family cannot change (it is ${primaryBefore}): delete the Service and create it again` });
  }

  // VIPs: those given, else those it had for a family it keeps.
  const vips: ServiceFamilies['vips'] = {};
  for (const ip of givenIps) vips[familyOfIp(ip)] = ip;
  const before = prev?.spec.clusterIPs ?? (prev?.spec.clusterIP ? [prev.spec.clusterIP] : []);
  for (const ip of before) {
    const f = familyOfIp(ip);
    if (families.includes(f) && vips[f] === undefined) vips[f] = ip;
  }
  for (const f of Object.keys(vips) as IpFamilyName[]) {
    if (!families.includes(f)) problems.push({ field: 'spec.clusterIPs', message: `${vips[f]} is ${f}, not one of the Service's families (${families.join(', ')})` });
  }
  return { policy, families, vips, problems };
}
