/**
 * Issue 19, the channels a local user or a workload can reach, on one host
 * (the embedded default): the state and run directories are root's alone,
 * the node proxy has no admin port on the pod gateway, /metrics answers
 * only with the node's token (and carries the proxy's counters), and a
 * Workload written into the store by hand, around apply, runs nothing.
 * etcd and the agents' channel: src/store/etcd.test.ts,
 * src/controlplane/agent-channel.test.ts, test/integration/multinode.test.ts;
 * the UI: test/integration/ui.test.ts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestMesh } from '../helpers/mesh.js';
import { looseEntries, walk } from '../helpers/modes.js';
import { instancePaths } from '../../src/paths.js';
import { instanceClient } from '../../src/cli/client.js';
import { meshApi } from '../../src/api/mesh.js';
import { gatewayOf } from '../../src/host/network.js';
import { mustParseCidr } from '../../src/net/ipam.js';
import { pidAlive } from '../../src/host/pids.js';

const mesh = new TestMesh('chan');
const paths = instancePaths(mesh.instance);
const marker = join(mesh.dir, 'owned');

const world = `apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: web, namespace: chan, labels: {app: web}}
spec:
  command: [python3, -m, http.server, '8080', --bind, 0.0.0.0]
  ports: [{name: http, containerPort: 8080}]
  env: {SECRET_TOKEN: not-for-other-users}
---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: chan, labels: {app: client}}
spec: {command: [sleep, infinity]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: chan}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
# An L7 route: the node proxy runs.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: chan}
spec:
  parentRefs: [{kind: Service, name: web}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
`;

before(() => {
  process.env.EBMESH_METRICS_ADDR = '127.0.0.1:0';
  mesh.ok('up', '-f', mesh.meshConfigFile(), '-f', mesh.file('world.yaml', world));
});
after(() => mesh.down());

test('state and run directories: directories 0700, files and sockets 0600 (store, identities, logs, PID files, tokens)', () => {
  const entries = [...walk(paths.stateDir), ...walk(paths.runDir)];
  const names = new Set(entries.map((e) => e.path.slice(e.path.lastIndexOf('/') + 1)));
  // The check covers what matters: it found them.
  for (const f of ['store.json', 'daemon.log', 'identities.json', 'metrics.token', 'proxy.log', 'daemon.pid', 'api.sock', 'proxy.sock', 'output.log']) {
    assert.ok(names.has(f), `${f} is among what was checked (${[...names].join(', ')})`);
  }
  assert.deepEqual(looseEntries(entries), []);
});

test('the node proxy runs, and offers the workloads no admin port on their gateway (its counters are in the node\'s /metrics)', async () => {
  const st = JSON.parse(mesh.ok('status', '-o', 'json')) as { proxy?: { ready?: boolean; pid?: number } };
  assert.ok(st.proxy?.ready, `the node proxy runs: ${JSON.stringify(st.proxy)}`);
  // Through the proxy once, so its counters move.
  const r = mesh.sh('client', 'curl -s -o /dev/null -w "%{http_code}" --max-time 5 http://web.chan/');
  assert.equal(r.stdout, '200', r.stderr);
  const gw = gatewayOf(mustParseCidr(mesh.podCIDR));
  for (const port of [15020, 15000, 15090]) {
    const probe = mesh.sh('client', `curl -s -o /dev/null -w "%{http_code}" --max-time 3 http://${gw}:${port}/stats`);
    assert.equal(probe.stdout, '000', `${gw}:${port} answered a workload: ${probe.stdout}`);
  }
  const addr = readFileSync(join(paths.runDir, 'metrics.addr'), 'utf8').trim();
  const token = readFileSync(join(paths.stateDir, 'metrics.token'), 'utf8').trim();
  const text = await (await fetch(`http://${addr}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  const requests = /^ebmesh_proxy_requests_total (\d+)/m.exec(text);
  assert.ok(requests && Number(requests[1]) >= 1, 'the node proxy\'s counters come with the agent\'s');
  // The readiness probe's path needs no token and tells nothing but ready or not; /metrics without the token stays closed.
  const ready = await fetch(`http://${addr}/readyz`);
  assert.equal(ready.status, 200);
  assert.equal(await ready.text(), 'ok\n');
  assert.equal((await fetch(`http://${addr}/metrics`)).status, 401);
});

test('a Workload written into the store by hand, around apply, runs nothing: it is left out and reported', async () => {
  // The daemon stops (leaving everything in place), someone edits the store file, the daemon starts again.
  const st = await instanceClient(paths).call(meshApi.status, {});
  await instanceClient(paths).call(meshApi.shutdown, { teardown: false });
  const until = Date.now() + 30_000;
  while (pidAlive(st.pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  assert.equal(pidAlive(st.pid), false, 'the daemon stopped');
  const file = JSON.parse(readFileSync(paths.storeFile, 'utf8')) as { revision: number; entries: Record<string, { value: unknown; modRevision: number }> };
  const revision = file.revision + 1;
  const evil = (name: string, spec: Record<string, unknown>) => ({
    value: { apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload', metadata: { name, namespace: 'chan' }, spec }, modRevision: revision,
  });
  // Each would run `touch MARKER` as root, were it taken as it is: a field apply refuses, a command as one string, another's key.
  file.entries['/resources/Workload/chan/evil'] = evil('evil', { command: ['touch', marker], ip: mesh.podCIDR.replace(/\.0\/24$/, '.77'), hostPID: true });
  file.entries['/resources/Workload/chan/shell'] = evil('shell', { command: `touch ${marker}` });
  file.entries['/resources/Workload/chan/elsewhere'] = evil('client', { command: ['touch', marker] });
  file.revision = revision;
  writeFileSync(paths.storeFile, JSON.stringify(file));
  mesh.ok('up', '-f', mesh.meshConfigFile());
  const status = JSON.parse(mesh.ok('status', '-o', 'json')) as { rejected?: Array<{ key: string; problem: string }>; workloads: Array<{ name: string }> };
  const rejected = Object.fromEntries((status.rejected ?? []).map((r) => [r.key, r.problem]));
  assert.match(rejected['/resources/Workload/chan/evil'] ?? '', /hostPID/);
  assert.match(rejected['/resources/Workload/chan/shell'] ?? '', /spec\.command/);
  assert.match(rejected['/resources/Workload/chan/elsewhere'] ?? '', /not what its key names/);
  assert.deepEqual(status.workloads.map((w) => w.name).sort(), ['client', 'web']);
  assert.match(readFileSync(paths.logFile, 'utf8'), /store: left out \/resources\/Workload\/chan\/evil/);
  // The mesh goes on: the valid workloads serve, and nothing ran the command.
  const r = mesh.sh('client', 'curl -s -o /dev/null -w "%{http_code}" --max-time 5 http://web.chan/');
  assert.equal(r.stdout, '200', r.stderr);
  assert.equal(existsSync(marker), false, 'no stored value that fails its check ran anything');
  assert.doesNotMatch(mesh.ok('get', 'workloads', '-n', 'chan'), /evil|shell/);
});
