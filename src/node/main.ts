/**
 * The node daemon process (started by `ebmesh up`, or by a supervisor).
 * SIGTERM stops it and leaves the data path in place: programs, maps and
 * workloads keep running, and the next daemon adopts them.
 */
import { writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { instancePaths, validInstance } from '../paths.js';
import { NodeDaemon } from '../agent/node-agent.js';
import { route, startApi } from '../api/server.js';
import '../policy/explain-flow.js';
import { describeError } from '../errors.js';
// Parts that add endpoints register them on import.
import '../observe/routes.js'; // /v1/flows, /v1/top
import '../ui/api-map.js'; // /v1/servicemap

const { values } = parseArgs({ options: { instance: { type: 'string', default: process.env.EBMESH_INSTANCE ?? 'ebmesh' } } });
const instance = values.instance!;
if (!validInstance(instance)) {
  process.stderr.write(`invalid instance name "${instance}"\n`);
  process.exit(2);
}
const paths = instancePaths(instance);
const node = new NodeDaemon(paths);

let stopping = false;
async function shutdown(teardown: boolean, code = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  try {
    await node.stop(teardown);
  } catch (e) {
    process.stderr.write(`stopping: ${describeError(e)}\n`);
    code = 1;
  }
  if (!teardown) rmSync(paths.pidFile, { force: true });
  process.exit(code);
}

route('POST', '/v1/shutdown', async ({ body }) => {
  const teardown = (body as { teardown?: boolean } | undefined)?.teardown === true;
  setImmediate(() => void shutdown(teardown));
  return { stopping: true, teardown };
});

try {
  await node.start();
  mkdirSync(paths.runDir, { recursive: true });
  await startApi(node, paths.apiSocket);
  writeFileSync(paths.pidFile, String(process.pid));
  process.stderr.write(`ebmesh node ${instance} ready (pid ${process.pid})\n`);
} catch (e) {
  process.stderr.write(`ebmesh node ${instance} failed to start: ${describeError(e)}\n`);
  process.exit(1);
}
process.on('SIGTERM', () => void shutdown(false));
process.on('SIGINT', () => void shutdown(false));
