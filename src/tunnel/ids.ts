/**
 * SPIFFE IDs the tunnel deals in. A node proxy presents its node's SVID:
 *   spiffe://TRUST_DOMAIN/ns/ebmesh-system/sa/node-NODENAME
 * The namespace ebmesh-system is reserved for the mesh's own identities, so
 * a node ID has the same shape as a workload ID (any SPIFFE-aware policy
 * reads it) but no Workload can ever be given it: the CA refuses to sign a
 * workload SVID in ebmesh-system (ControlPlane.issueSvid).
 *
 * The control plane presents spiffe://TRUST_DOMAIN/ns/ebmesh-system/sa/controlplane
 * to agents, and an agent presents its node's ID to the control plane.
 */
export const SYSTEM_NAMESPACE = 'ebmesh-system';
const NODE_PREFIX = 'node-';
const CONTROL_PLANE = 'controlplane';

export function controlPlaneSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/${SYSTEM_NAMESPACE}/sa/${CONTROL_PLANE}`;
}

/** A control plane's ID (of TRUST_DOMAIN when given, of any otherwise). */
export function isControlPlaneId(id: string | undefined, trustDomain?: string): boolean {
  const p = id === undefined ? undefined : parseSpiffeId(id);
  return !!p && p.namespace === SYSTEM_NAMESPACE && p.serviceAccount === CONTROL_PLANE && (trustDomain === undefined || p.trustDomain === trustDomain);
}

export interface ParsedSpiffeId {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

export function nodeSpiffeId(trustDomain: string, node: string): string {
  return `spiffe://${trustDomain}/ns/${SYSTEM_NAMESPACE}/sa/${NODE_PREFIX}${node}`;
}

export function parseSpiffeId(id: string): ParsedSpiffeId | undefined {
  const m = /^spiffe:\/\/([a-z0-9.\-_]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id);
  return m ? { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! } : undefined;
}

/** The node name of a node ID of this trust domain, or undefined for anything else. */
export function nodeOf(id: string, trustDomain: string): string | undefined {
  const p = parseSpiffeId(id);
  if (!p || p.trustDomain !== trustDomain || p.namespace !== SYSTEM_NAMESPACE || !p.serviceAccount.startsWith(NODE_PREFIX)) return undefined;
  return p.serviceAccount.slice(NODE_PREFIX.length) || undefined;
}

/** The SPIFFE ID in the URI SAN of a peer certificate as node:tls reports it ("URI:spiffe://…, DNS:…"). */
export function spiffeIdFromSan(subjectaltname: string | undefined): string | undefined {
  return spiffeIdFromUris((subjectaltname ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4)));
}

/** The SPIFFE ID among a certificate's URI SANs (as the relay reads them out of a peer's certificate). */
export function spiffeIdFromUris(uris: readonly string[]): string | undefined {
  const ids = uris.filter((u) => u.startsWith('spiffe://'));
  // An SVID has exactly one SPIFFE URI; more is ambiguous and refused.
  return ids.length === 1 ? ids[0] : undefined;
}
