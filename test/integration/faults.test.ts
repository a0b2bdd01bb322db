/**
 * Faults under load on a two-node lab (etcd, control plane, one agent per
 * node, a node proxy per node carrying cross-node traffic through the mTLS
 * tunnel): kill -9 of an agent, of a node proxy and of the control plane,
 * each while a client on node-1 holds a keep-alive connection and opens new
 * ones to a Service whose backend is on node-2 (so every request goes
 * through both nodes' proxies and the tunnel between them). Each test counts the
 * client's failed requests and resets, checks that the desired state is
 * whole (what was applied is there; an apply cut by the fault landed whole
 * or not at all, and said so), and that status names the part that is down
 * while it is down and is healthy again after.
 *
 * The etcd member and the full disk have their own files
 * (faults-etcd.test.ts, faults-disk.test.ts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { TestCluster, CLIENT_LOOP, indent, loopTally, nameServerWorkload, type LoopTally } from '../helpers/cluster.js';
import { nodeApi } from '../../src/api/node.js';
import { PACKAGE_ROOT, nodeNetns, nodePaths } from '../../src/paths.js';
import { readCluster } from '../../src/lab/cluster.js';
import { instancePaths } from '../../src/paths.js';
import { listensIn } from '../../src/host/listening.js';

const mesh = new TestCluster('flt');
const web = (i: number) => nameServerWorkload({ name: `web-${i}`, namespace: 'demo', node: `node-${i}`, labels: `app: web, at: node-${i}`, serviceAccount: 'web' });
const yaml = `${[1, 2].map(web).join('')}apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: demo, labels: {app: client}}
spec:
  node: node-1
  serviceAccount: client
  command: [sleep, infinity]
  files:
    loop.py: |
${indent(CLIENT_LOOP, 6)}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: remote, namespace: demo}
spec:
  selector: {at: node-2}
  ports: [{port: 80, targetPort: http}]
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  // A node SVID of 10 minutes: an agent killed without its stop-time renewal must not take the tunnel's certificate with it (docs/multinode.md).
  mesh.ok('up', '--nodes', '2', '--svid-ttl', '600', '-f', mesh.meshConfigFile(), '-f', mesh.file('demo.yaml', yaml), '--timeout', '120');
  const st = await mesh.waitTunnels();
  assert.ok(st.nodes.every((n) => n.tunnel?.listening) && st.workloads.every((w) => w.ready), JSON.stringify(st));
});
after(() => mesh.down());

const cluster = () => {
  const st = readCluster(instancePaths(mesh.instance));
  if (!st) throw new Error('no cluster.json');
  return st;
};
const loopPy = () => join(nodePaths(mesh.instance, 'node-1').stateDir, 'workloads', 'demo', 'client', 'loop.py');

async function until<T>(what: string, read: () => T | Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  let v = await read();
  while (!ok(v) && Date.now() < end) {
    await sleep(200);
    v = await read();
  }
  assert.ok(ok(v), `${what}: ${JSON.stringify(v)}`);
  return v;
}

/**
 * Runs the client loop for SECONDS and FAULT once its keep-alive connection
 * is open; the tally, with zero failures and resets asserted.
 */
async function underLoad(seconds: number, fault: () => Promise<void>): Promise<LoopTally> {
  // exec asks the control plane where the workload runs: start the loop before any fault.
  // Every request crosses nodes: node-1's proxy, the tunnel, node-2's endpoint (the path with the most parts to fail).
  const looping = mesh.shRunning('client', `python3 ${loopPy()} remote.demo ${seconds}`);
  await looping.running;
  // Python's start on a busy machine: the fault must come once requests flow.
  await sleep(3000);
  await fault();
  const t = loopTally(await looping.done);
  assert.equal(t.keepalive_fail + t.new_fail, 0, `failed requests: ${JSON.stringify(t)}`);
  assert.equal(t.resets, 0, JSON.stringify(t));
  assert.ok(t.keepalive_ok > 6 * seconds && t.new_ok > 2 * seconds, `the loop ran: ${JSON.stringify(t)}`);
  return t;
}

const report = (name: string, t: LoopTally) =>
  process.stdout.write(`# fault ${name}: requests ${t.keepalive_ok + t.keepalive_fail + t.new_ok + t.new_fail} (keep-alive ${t.keepalive_ok}, new connections ${t.new_ok}), failed ${t.keepalive_fail + t.new_fail}, resets ${t.resets}\n`);

const service = (name: string) => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: demo}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
`;

const node2 = () => mesh.status().nodes.find((n) => n.name === 'node-2')!;

/** Answers of `curl http://NAME.demo/` from web-2 (on node-2), N times, sorted and unique. */
function reachFromNode2(name: string, n = 20): string[] {
  const r = mesh.sh('web-2', `for i in $(seq 1 ${n}); do curl -s --max-time 3 http://${name}.demo/; echo; done | sort -u`);
  return r.stdout.split('\n').filter(Boolean);
}

test('kill -9 of an agent: no request fails; status says the node is unhealthy; what was applied meanwhile reaches it on restart', async () => {
  let rev = 0;
  const t = await underLoad(14, async () => {
    const pid = cluster().agents['node-2']!;
    process.kill(pid, 'SIGKILL');
    await until('node-2 is unhealthy in status', node2, (n) => !n.healthy);
    const text = mesh.cli('status');
    assert.equal(text.code, 1, 'status exits 1 while a node is unhealthy');
    assert.match(text.stdout, /node-2 .*STALE/);
    // Desired state changes while the node has no agent: the control plane takes them.
    mesh.ok('apply', '-f', mesh.file('extra.yaml', service('extra')));
    rev = mesh.status().revision;
    mesh.ok('lab', 'start', 'node-2');
  });
  report('agent', t);
  const n = await until('node-2 healthy, at the revision applied while it was down', node2, (x) => x.healthy && (x.appliedRevision ?? 0) >= rev);
  assert.ok(n.healthy);
  assert.deepEqual(reachFromNode2('extra'), ['web-1', 'web-2']);
});

test('kill -9 of a node proxy (the receiving node\'s, then the sending node\'s): no request fails; its workers serve until the next one took over, then drain; the node API says why', async () => {
  const proxyOf = async (node: string) => (await mesh.nodeApi(node, nodeApi.proxy, { limit: 1 })).status;
  const orphaned: Array<[string, string]> = [];
  const t = await underLoad(18, async () => {
    for (const node of ['node-2', 'node-1']) {
      const before = (await proxyOf(node))!;
      assert.ok(before.pid && before.ready && before.listen, JSON.stringify(before));
      process.kill(before.pid, 'SIGKILL');
      // The orphaned workers hold the steered port: the next generation listens on the other one and is steered there.
      const after = await until(`a new node proxy on ${node}, steered to`, () => proxyOf(node), (p) => !!p?.pid && p.pid !== before.pid && !!p.ready && p.listen !== before.listen);
      assert.match(after!.lastExit ?? '', new RegExp(`pid ${before.pid}`), 'the node API says why the proxy was started again');
      orphaned.push([node, before.listen!]);
      await sleep(2000);
    }
  });
  report('node proxy', t);
  // Replaced, the orphans drain: their keep-alive connections close after an answer, and they let the port go.
  for (const [node, listen] of orphaned) {
    const [host, port] = listen.split(':') as [string, string];
    const held = () => listensIn(execFileSync('ip', ['netns', 'exec', nodeNetns(mesh.instance, node), 'cat', '/proc/net/tcp'], { encoding: 'utf8' }), host, Number(port));
    await until(`the orphaned workers on ${node} (${listen}) exit`, held, (h) => !h, 45_000);
  }
  assert.deepEqual(reachFromNode2('web'), ['web-1', 'web-2']);
});

test('kill -9 of the control plane: no request fails; apply is refused with a clear error and nothing half-applied; status says the control plane is down', async () => {
  const bulk = Array.from({ length: 300 }, (_, i) => service(`bulk-${i}`)).join('---\n');
  const bulkFile = mesh.file('bulk.yaml', bulk);
  const t = await underLoad(14, async () => {
    // An apply under way when the control plane dies lands whole or not at all.
    const cli = spawn(join(PACKAGE_ROOT, 'bin/ebmesh'), ['--instance', mesh.instance, 'apply', '-f', bulkFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    cli.stdout.on('data', (d) => (out += d));
    cli.stderr.on('data', (d) => (out += d));
    const applied = new Promise<number>((r) => cli.once('close', (c) => r(c ?? -1)));
    await sleep(150);
    process.kill(cluster().cpPid!, 'SIGKILL');
    const code = await applied;
    process.stdout.write(`# apply cut by the kill: exit ${code}: ${out.trim().split('\n').pop()}\n`);
    if (code !== 0) assert.match(out, /control plane/i, 'the refused apply names the control plane');
    const refused = mesh.cli('apply', '-f', mesh.file('late.yaml', service('late')));
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /control plane .*not running/i, refused.stderr);
    const st = mesh.cli('status');
    assert.notEqual(st.code, 0);
    assert.match(st.stderr, /control plane .*not running/i, st.stderr);
    mesh.ok('lab', 'start', 'controlplane');
  });
  report('control plane', t);
  const st = await until('every node healthy again', () => mesh.status(), (s) => s.nodes.every((n) => n.healthy));
  const got = JSON.parse(mesh.ok('get', 'service', '-n', 'demo', '-o', 'json')) as Array<{ metadata: { name: string } }> | { items: Array<{ metadata: { name: string } }> };
  const names = (Array.isArray(got) ? got : got.items).map((s) => s.metadata.name);
  const bulkCount = names.filter((n) => n.startsWith('bulk-')).length;
  assert.ok(bulkCount === 0 || bulkCount === 300, `bulk apply half-applied: ${bulkCount} of 300`);
  assert.ok(!names.includes('late'), 'the refused apply wrote nothing');
  assert.ok(names.includes('web') && names.includes('remote'), 'what was applied before is there');
  assert.ok(st.revision > 0);
  mesh.ok('apply', '-f', mesh.file('late.yaml', service('late')));
  assert.deepEqual(reachFromNode2('late'), ['web-1', 'web-2']);
});
