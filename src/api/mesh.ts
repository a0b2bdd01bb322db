/**
 * The mesh's admin API: what the process that holds the desired state
 * serves on the instance's API socket (`/run/ebmesh/INSTANCE/api.sock`):
 * the embedded node daemon on one host, the control plane when the mesh
 * spans nodes. The CLI's apply, delete, get, status and down use it.
 */
import { z } from 'zod';
import type { AnyResource, WorkloadResource } from '../resources/index.js';
import type { WorkloadStatus } from '../controlplane/state.js';
import { defineRoute, noInput } from './route.js';
import { StatusSchema } from './status.js';

const isObject = (v: unknown) => typeof v === 'object' && v !== null;

const ApplyResult = z.object({ resource: z.string(), action: z.string() });
const Results = z.object({ results: z.array(ApplyResult) });
const YamlInput = z.object({ text: z.string(), file: z.string().optional() }).strict();
const ResourceRef = z.object({ kind: z.string(), namespace: z.string().optional(), name: z.string() }).strict();

export const meshApi = {
  status: defineRoute({
    method: 'GET', path: '/v1/status', input: noInput.passthrough(), output: StatusSchema,
    summary: 'the node (or, on a mesh of several nodes, the control plane): data path, workloads, services',
  }),
  apply: defineRoute({
    method: 'POST', path: '/v1/apply', input: YamlInput, output: Results,
    summary: 'validate and store every resource of a YAML stream, all or nothing',
  }),
  delete: defineRoute({
    method: 'POST', path: '/v1/delete',
    input: z.union([YamlInput, z.object({ refs: z.array(ResourceRef).min(1) }).strict()]),
    output: Results,
    summary: 'delete the resources of a YAML stream, or named ones',
  }),
  resources: defineRoute({
    method: 'GET', path: '/v1/resources',
    input: z.object({ kind: z.string().optional(), namespace: z.string().optional(), name: z.string().optional() }),
    output: z.object({ items: z.array(z.custom<AnyResource & { status?: WorkloadStatus }>(isObject)) }),
    summary: 'stored resources, by kind, namespace and name',
  }),
  workload: defineRoute({
    method: 'GET', path: '/v1/workload', input: z.object({ ref: z.string().min(1) }),
    output: z.object({ workload: z.custom<WorkloadResource>(isObject), status: z.custom<WorkloadStatus>(isObject).optional() }),
    summary: 'one workload (NAME or NAMESPACE/NAME) and its status: where `ebmesh exec` enters',
  }),
  shutdown: defineRoute({
    method: 'POST', path: '/v1/shutdown', input: z.object({ teardown: z.boolean().optional() }).strict(),
    output: z.object({ stopping: z.literal(true), teardown: z.boolean().optional() }),
    summary: 'stop the process; with teardown, remove everything the instance made',
  }),
};
