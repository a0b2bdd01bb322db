/**
 * The CLI's way to the instance: the typed API client over the instance's
 * unix socket (the node daemon's, or on a mesh of several nodes, the
 * control plane's; a node agent's with nodePaths).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ApiClient } from '../api/client.js';
import { nodeTransport } from '../api/node-transport.js';
import { meshApi } from '../api/mesh.js';
import { EbmeshError } from '../errors.js';
import type { InstancePaths } from '../paths.js';

type ClientPaths = Pick<InstancePaths, 'apiSocket' | 'instance' | 'runDir' | 'stateDir'>;

/**
 * What to say when nobody answers on the socket. A mesh of several nodes
 * leaves its control plane's PID file behind when the control plane dies
 * (a clean stop removes it), and a lab its cluster.json: then the part that
 * is down is the control plane, and the data path is not (the agents keep
 * the last desired state), which "the node is not running" would hide.
 */
function unreachable(paths: ClientPaths): EbmeshError {
  const lab = existsSync(join(paths.stateDir, 'cluster.json'));
  if (lab || existsSync(join(paths.runDir, 'controlplane.pid'))) {
    return new EbmeshError('EBMESH_NOT_RUNNING', `the control plane of mesh "${paths.instance}" is not running: apply, delete, get and status need it; the agents keep serving the last desired state`, {
      hint: lab ? 'start it with: ebmesh lab start controlplane' : 'start it again: ebmesh controlplane (with the options it ran with)',
      where: paths.apiSocket,
    });
  }
  return new EbmeshError('EBMESH_NOT_RUNNING', `the mesh node "${paths.instance}" is not running`, { hint: 'start it with: ebmesh up' });
}

export function instanceClient(paths: ClientPaths, timeoutMs?: number): ApiClient {
  return new ApiClient(nodeTransport({ socketPath: paths.apiSocket }, {
    peer: `the mesh node "${paths.instance}"`,
    unreachable: () => unreachable(paths),
  }), timeoutMs);
}

export async function isRunning(paths: ClientPaths): Promise<boolean> {
  try {
    await instanceClient(paths).call(meshApi.status, {}, { timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}
