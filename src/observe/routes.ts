/** The observe endpoints of the node API. */
import { route, streamRoute } from '../api/server.js';
import type { NodeDaemon } from '../agent/node-agent.js';
import { EbmeshError } from '../errors.js';
import { filterFromQuery } from './flow.js';
import type { Observer } from './observer.js';

function observer(node: NodeDaemon): Observer {
  if (!node.observer) throw new EbmeshError('EBMESH_OBSERVE_OFF', 'flow observation is not running on this node', { hint: 'see the daemon log' });
  return node.observer;
}

function limitOf(url: URL, dflt: number): number {
  const v = url.searchParams.get('last');
  if (v === null) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new EbmeshError('EBMESH_USAGE', `last must be a whole number, not "${v}"`);
  return n;
}

// GET /v1/flows?follow=1 streams NDJSON; without follow, one JSON body.
streamRoute('GET', '/v1/flows', ({ url }, res, node) => {
  if (url.searchParams.get('follow') !== '1') return false;
  observer(node).follow(res, filterFromQuery(url.searchParams), limitOf(url, 0));
  return true;
});

route('GET', '/v1/flows', async ({ url }, node) => {
  const o = observer(node);
  return { flows: o.flows(filterFromQuery(url.searchParams), limitOf(url, 20)), stats: o.stats() };
});

route('GET', '/v1/top', async ({ url }, node) => {
  const w = Number(url.searchParams.get('window') ?? '10');
  if (!(w >= 1 && w <= 60)) throw new EbmeshError('EBMESH_USAGE', 'window must be 1..60 seconds');
  return { window: w, services: observer(node).top(w) };
});

route('GET', '/v1/metrics', async (_r, node) => ({ text: observer(node).exposition(), port: observer(node).metricsPort }));
