/**
 * Sizes of the maps the programs write per connection, from the node's
 * MeshConfig. They are preallocated (bpf/include/ebmesh_maps.h), so their
 * size is memory spent whether used or not: a small node keeps the compiled
 * default (65,536 connections, about 33 MiB in all), a busy one asks for
 * more. A pinned map keeps the size it was made with (its entries are live
 * state); a new size applies once the maps are made again (`ebmesh down`,
 * then `up`), and the agent says so (see Datapath.load).
 */
import type { MeshConfigResource } from '../resources/index.js';

/**
 * One entry per tracked connection (socket) each. The IPv6 ones default to a
 * quarter of the IPv4 ones (EBM_CONNS6_MAX in ebmesh_abi.h); a size given in
 * the MeshConfig is for both families.
 */
export const CONNECTION_MAPS = [
  'ebm_lb4_revnat', 'ebm_l7_pending', 'ebm_l7_conns', 'ebm_pol_udp_flows', 'ebm_http_pending',
  'ebm_lb6_revnat', 'ebm_l7_conns6', 'ebm_pol_udp_flows6', 'ebm_http_pending6',
] as const;

export function connectionMapSizes(mesh: MeshConfigResource): Record<string, number> {
  const n = mesh.spec.datapath?.connections;
  return n === undefined ? {} : Object.fromEntries(CONNECTION_MAPS.map((m) => [m, n]));
}
