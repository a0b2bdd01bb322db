/**
 * A workload the lab did not make joins the mesh by its cgroup, without a
 * restart: a process started by the test in its own cgroup and network
 * namespace (outside the mesh) cannot use a VIP; once a Workload adopts
 * that cgroup, the same process (same PID) can.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { PACKAGE_ROOT, instancePaths } from '../../src/paths.js';
import { cgroup2Root } from '../../src/kernel/index.js';
import { TestMesh } from '../helpers/mesh.js';

let mesh: TestMesh;
const netns = `ebt-adopt-${process.pid}`;
const veth = `ebta${process.pid % 100000}`;
let cgroup = '';
let proc: ChildProcess | undefined;
let ip = '';
let vip = '';

before(() => {
  mesh = new TestMesh('adopt');
  mesh.ok('up', '-f', mesh.meshConfigFile(), '-f', join(PACKAGE_ROOT, 'examples/demo.yaml'));
  vip = (JSON.parse(mesh.ok('get', 'svc', 'web', '-n', 'demo', '-o', 'json')) as { spec: { clusterIP: string } }).spec.clusterIP;
  ip = mesh.podCIDR.replace(/\.0\/24$/, '.200');
  const gw = mesh.podCIDR.replace(/\.0\/24$/, '.1');
  // An existing "pod", made the way some other runtime would make it.
  execFileSync('ip', ['netns', 'add', netns]);
  execFileSync('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}p`]);
  execFileSync('ip', ['link', 'set', `${veth}p`, 'netns', netns]);
  execFileSync('ip', ['link', 'set', veth, 'master', instancePaths(mesh.instance).bridge, 'up']);
  for (const args of [['addr', 'add', `${ip}/24`, 'dev', `${veth}p`], ['link', 'set', 'lo', 'up'], ['link', 'set', `${veth}p`, 'up'],
    ['route', 'add', 'unreachable', mesh.serviceCIDR], ['route', 'add', 'default', 'via', gw]]) {
    execFileSync('ip', ['-n', netns, ...args]);
  }
  cgroup = join(cgroup2Root(), `ebt-adopt-${process.pid}`);
  mkdirSync(cgroup, { recursive: true });
});

after(() => {
  if (proc?.pid && proc.exitCode === null) process.kill(proc.pid, 'SIGKILL');
  mesh?.down();
  spawnSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
  spawnSync('ip', ['link', 'del', veth], { stdio: 'ignore' });
  if (cgroup && existsSync(cgroup)) try { rmdirSync(cgroup); } catch { /* its process is still leaving */ }
});

test('an existing cgroup and netns join the mesh without a restart', async () => {
  // One long-lived process: tries the VIP every 100 ms, 80 times at most.
  proc = spawn('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec ip netns exec "$2" python3 -u -c "$0"', `
import socket, time, os
for i in range(80):
    try:
        s = socket.create_connection(("${vip}", 80), timeout=1); s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        print(os.getpid(), "ok", s.recv(200).split(b"\\r\\n")[0].decode(), flush=True); s.close()
    except OSError as e:
        print(os.getpid(), "fail", e.errno, flush=True)
    time.sleep(0.1)
`, cgroup, netns], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  // A few attempts before adopting; on a loaded host python may take a while to start (bounded: 5 s).
  for (const t0 = Date.now(); out.trim().split('\n').filter(Boolean).length < 3 && Date.now() - t0 < 5000;) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const beforeAdopt = out.trim().split('\n');
  assert.ok(beforeAdopt.length >= 3 && beforeAdopt.every((l) => l.includes(' fail ')), `before adoption:\n${out}`);

  mesh.ok('apply', '-f', mesh.file('adopt.yaml', `apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: legacy, namespace: demo, labels: {app: legacy}}
spec:
  ip: ${ip}
  adopt: {cgroup: ${cgroup}, netns: /var/run/netns/${netns}}
`));
  await once(proc, 'exit');
  const lines = out.trim().split('\n');
  const pids = new Set(lines.map((l) => l.split(' ')[0]));
  assert.equal(pids.size, 1, 'one process throughout');
  const firstOk = lines.findIndex((l) => l.includes(' ok '));
  assert.ok(firstOk > 0, `never reached the VIP after adoption:\n${out}`);
  assert.ok(lines.slice(firstOk).every((l) => l.includes(' ok HTTP/1.1 200')), `after adoption:\n${lines.slice(firstOk).join('\n')}`);
});

test('exec enters an adopted workload, and status lists it', () => {
  const r = mesh.cli('exec', 'demo/legacy', '--', 'sh', '-c', 'ip -4 -o addr show | grep -c ' + ip);
  assert.equal(r.stdout.trim(), '1', r.stderr);
  const st = JSON.parse(mesh.ok('status', '-o', 'json')) as { workloads: Array<{ name: string; phase: string }>; datapath: { attached: string[] } };
  assert.equal(st.workloads.find((w) => w.name === 'legacy')?.phase, 'Adopted');
  assert.ok(st.datapath.attached.includes('adopt_demo_legacy'));
});

test('deleting the adopted workload takes its cgroup out of the mesh', () => {
  mesh.ok('delete', 'workload', 'legacy', '-n', 'demo');
  const st = JSON.parse(mesh.ok('status', '-o', 'json')) as { datapath: { attached: string[] } };
  assert.ok(!st.datapath.attached.includes('adopt_demo_legacy'));
  const r = spawnSync('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec ip netns exec "$2" python3 -c "$0"',
    `import socket\ntry:\n  socket.create_connection(("${vip}", 80), timeout=1); print("ok")\nexcept OSError as e: print("fail")`, cgroup, netns], { encoding: 'utf8' });
  assert.equal(r.stdout.trim(), 'fail');
});

test('without the capabilities, up explains which are missing and changes nothing', () => {
  const r = spawnSync('setpriv', ['--bounding-set=-all', '--inh-caps=-all', '--', join(PACKAGE_ROOT, 'bin/ebmesh'), '--instance', `${mesh.instance.slice(0, 24)}-nc`, 'up'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /missing capabilities CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF/);
});
