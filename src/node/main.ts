/**
 * The node daemon of the embedded default (`ebmesh up`): one host, one
 * process. It holds the desired state in the embedded store and serves the
 * mesh API over it, and runs the node agent on that store. SIGTERM stops it
 * and leaves the data path in place: programs, maps and workloads keep
 * running, and the next daemon adopts them.
 */
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { instancePaths, validInstance } from '../paths.js';
import { NodeAgent } from '../agent/node-agent.js';
import { StoreSource } from '../agent/store-source.js';
import { nodeHandlers } from '../agent/routes.js';
import { EmbeddedStore } from '../store/index.js';
import { meshHandlers } from '../controlplane/mesh-handlers.js';
import { serve, startServer } from '../api/server.js';
import { meshApi } from '../api/mesh.js';
import { nodeApi } from '../api/node.js';
import { describeError } from '../errors.js';
import { privateDir, writePrivateFile } from '../host/private-files.js';

const NODE_NAME = 'node-1';

const { values } = parseArgs({ options: { instance: { type: 'string', default: process.env.EBMESH_INSTANCE ?? 'ebmesh' } } });
const instance = values.instance!;
if (!validInstance(instance)) {
  process.stderr.write(`invalid instance name "${instance}"\n`);
  process.exit(2);
}
const paths = instancePaths(instance);
privateDir(paths.stateDir);
const store = new EmbeddedStore(paths.storeFile);
const agent = new NodeAgent(paths, new StoreSource(store, `embedded store ${paths.storeFile}`, NODE_NAME), {
  nodeName: NODE_NAME, nodeIndex: 0, routePodCIDR: false,
  // One node: no peer to tunnel to.
  nodeAddress: () => '',
});

let stopping = false;
async function shutdown(teardown: boolean, code = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  try {
    await agent.stop(teardown);
  } catch (e) {
    process.stderr.write(`stopping: ${describeError(e)}\n`);
    code = 1;
  }
  if (!teardown) rmSync(paths.pidFile, { force: true });
  process.exit(code);
}

try {
  await agent.start();
  privateDir(paths.runDir);
  // The mesh API's status is this node's; its other routes are the store's. The node's own routes beside them.
  const { status: _nodeStatus, shutdown: _nodeShutdown, ...nodeOnly } = nodeApi;
  await startServer({ socketPath: paths.apiSocket }, [
    serve(meshApi, meshHandlers(store, {
      afterWrite: () => agent.reconcileNow(),
      status: () => agent.status(),
      shutdown: (teardown) => void shutdown(teardown),
    })),
    serve(nodeOnly, nodeHandlers(agent, { shutdown: (teardown) => void shutdown(teardown) })),
  ]);
  writePrivateFile(paths.pidFile, String(process.pid));
  process.stderr.write(`ebmesh node ${instance} ready (pid ${process.pid})\n`);
} catch (e) {
  process.stderr.write(`ebmesh node ${instance} failed to start: ${describeError(e)}\n`);
  process.exit(1);
}
process.on('SIGTERM', () => void shutdown(false));
process.on('SIGINT', () => void shutdown(false));
