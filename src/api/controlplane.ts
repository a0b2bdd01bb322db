/**
 * The control plane's own routes. `clusterAdminApi` is served beside the
 * mesh API on the instance socket (the CLI's `up --nodes`); `agentApi` on
 * the listener agents reach, in mutual TLS: a caller proves which node it is
 * with its node certificate (the first one it gets with its join token,
 * `enroll`) and gets nothing of another node's.
 */
import { z } from 'zod';
import type { NodeDesired } from '../controlplane/nodes.js';
import type { Heartbeat } from '../controlplane/server.js';
import { defineRoute, noInput } from './route.js';

const isObject = (v: unknown) => typeof v === 'object' && v !== null;
const NodeRecord = z.object({ name: z.string(), index: z.number().int().min(0) });
const NodeName = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'a node name: lower-case letters, digits and "-"');

export const clusterAdminApi = {
  addNode: defineRoute({
    method: 'POST', path: '/v1/nodes', input: z.object({ name: NodeName }).strict(),
    output: NodeRecord.extend({ token: z.string(), bundlePem: z.string() }),
    summary: 'add a node (or find it) and get a new join token for it (one use), with the CA bundle its agent pins to enrol',
  }),
  nodes: defineRoute({
    method: 'GET', path: '/v1/nodes', input: noInput.passthrough(), output: z.object({ items: z.array(NodeRecord) }),
    summary: 'the nodes of the mesh, with their index (their pod subnet)',
  }),
};

const StatusOp = z.object({ type: z.enum(['put', 'delete']), key: z.string(), value: z.unknown().optional() }).strict();
const Svid = z.object({ certPem: z.string(), bundlePem: z.string(), spiffeId: z.string(), notBefore: z.string(), notAfter: z.string() });

export const agentApi = {
  enroll: defineRoute({
    method: 'POST', path: '/v1/nodes/:node/enroll',
    input: z.object({ node: NodeName, csrPem: z.string().min(1) }).strict(),
    output: Svid,
    summary: 'the node\'s certificate for a CSR, once, for its join token (Authorization: Bearer TOKEN); no client certificate needed',
  }),
  credential: defineRoute({
    method: 'POST', path: '/v1/nodes/:node/credential',
    input: z.object({ node: NodeName, csrPem: z.string().min(1) }).strict(),
    output: Svid,
    summary: 'the node\'s certificate renewed, for a CSR, presenting the current one',
  }),
  desired: defineRoute({
    method: 'GET', path: '/v1/nodes/:node/desired',
    input: z.object({
      node: NodeName,
      after: z.coerce.number().int().min(0).default(0),
      wait: z.coerce.number().min(0).max(60).default(0),
    }),
    output: z.union([z.object({ unchanged: z.literal(true) }), z.custom<NodeDesired>((v) => isObject(v) && typeof (v as { revision?: unknown }).revision === 'number')]),
    summary: 'the node\'s desired state after revision AFTER, waiting up to WAIT seconds for one (a delta when the log reaches back)',
  }),
  report: defineRoute({
    method: 'POST', path: '/v1/nodes/:node/status',
    input: z.object({ node: NodeName, ops: z.array(StatusOp).optional(), heartbeat: z.custom<Omit<Heartbeat, 'at'>>(isObject).optional() }).strict(),
    output: z.object({ revision: z.number() }),
    summary: 'the node\'s workload statuses and its heartbeat',
  }),
  svid: defineRoute({
    method: 'POST', path: '/v1/nodes/:node/svid',
    input: z.object({ node: NodeName, workload: z.string().optional(), forNode: z.boolean().optional(), csrPem: z.string().min(1) }).strict(),
    output: Svid,
    summary: 'a certificate for one of the node\'s workloads, or (forNode) for the node itself',
  }),
};
