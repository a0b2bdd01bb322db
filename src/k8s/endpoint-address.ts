/**
 * Where to dial a Service from the host without its VIP: the agent is the
 * node's service proxy, and a VIP means something only once the agent has
 * programmed it (and only to sockets the agent's programs see). So a
 * Service the agent itself depends on (its control plane) is dialled at a
 * ready endpoint, read from the Service's EndpointSlices.
 */
import type { K8sEndpointSlice } from './kinds.js';

export interface EndpointAddress {
  host: string;
  port: number;
}

/** The ready IPv4 endpoints of the slices on the port named PORTNAME, in a stable order. Pure. */
export function readyEndpointAddresses(slices: readonly K8sEndpointSlice[], portName: string): EndpointAddress[] {
  const out: EndpointAddress[] = [];
  for (const sl of slices) {
    if (sl.addressType !== 'IPv4') continue;
    const port = sl.ports?.find((p) => (p.name ?? '') === portName)?.port;
    if (port === undefined) continue;
    for (const ep of sl.endpoints ?? []) {
      // Ready unset means ready (the API's own rule).
      if (ep.conditions?.ready === false) continue;
      for (const host of ep.addresses) out.push({ host, port });
    }
  }
  return out.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : a.port - b.port));
}
