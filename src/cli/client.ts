/**
 * The CLI's way to the instance: the typed API client over the instance's
 * unix socket (the node daemon's, or on a mesh of several nodes, the
 * control plane's; a node agent's with nodePaths).
 */
import { ApiClient } from '../api/client.js';
import { nodeTransport } from '../api/node-transport.js';
import { meshApi } from '../api/mesh.js';
import { EbmeshError } from '../errors.js';
import type { InstancePaths } from '../paths.js';

export function instanceClient(paths: Pick<InstancePaths, 'apiSocket' | 'instance'>, timeoutMs?: number): ApiClient {
  return new ApiClient(nodeTransport({ socketPath: paths.apiSocket }, {
    peer: `the mesh node "${paths.instance}"`,
    unreachable: () => new EbmeshError('EBMESH_NOT_RUNNING', `the mesh node "${paths.instance}" is not running`, { hint: 'start it with: ebmesh up' }),
  }), timeoutMs);
}

export async function isRunning(paths: Pick<InstancePaths, 'apiSocket' | 'instance'>): Promise<boolean> {
  try {
    await instanceClient(paths).call(meshApi.status, {}, { timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}
