/**
 * Issue 2's acceptance on the real demo: `ebmesh up` with examples/demo.yaml,
 * real nginx backends in lab workloads, real curl in a client workload.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { TestMesh, hostRuleset } from '../helpers/mesh.js';

let mesh: TestMesh;
let rulesBefore: string;

function backendIps(): Map<string, string> {
  const out = JSON.parse(mesh.ok('get', 'workloads', '-n', 'demo', '-o', 'json')) as Array<{ metadata: { name: string }; spec: { ip: string } }>;
  return new Map(out.map((w) => [w.spec.ip, w.metadata.name]));
}

/** n fresh connections (one curl each) through the VIP: backend name -> count. */
function spread(n: number): Map<string, number> {
  const r = mesh.sh('client', `for i in $(seq ${n}); do curl -s -m 2 http://web.demo/ || echo FAIL; done`);
  assert.equal(r.code, 0, r.stderr);
  const ips = backendIps();
  const counts = new Map<string, number>();
  for (const line of r.stdout.trim().split('\n')) {
    const name = ips.get(line.trim()) ?? `unexpected:${line}`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

before(() => {
  rulesBefore = hostRuleset();
  mesh = new TestMesh('demo');
  mesh.ok('up', '-f', mesh.meshConfigFile(), '-f', join(PACKAGE_ROOT, 'examples/demo.yaml'));
});

after(() => mesh?.down());

test('300 requests through the VIP reach every backend, each between 20% and 47%', () => {
  const counts = spread(300);
  assert.deepEqual([...counts.keys()].sort(), ['web-1', 'web-2', 'web-3'], JSON.stringify([...counts]));
  for (const [name, c] of counts) assert.ok(c >= 60 && c <= 141, `${name} served ${c} of 300`);
});

test('names resolve to the VIP and the client sees the VIP as its peer', () => {
  const vip = (JSON.parse(mesh.ok('get', 'svc', 'web', '-n', 'demo', '-o', 'json')) as { spec: { clusterIP: string } }).spec.clusterIP;
  const r = mesh.cli('exec', 'demo/client', '--', 'python3', '-c',
    'import socket;s=socket.create_connection(("web.demo.svc.cluster.local",80));print(s.getpeername()[0])');
  assert.equal(r.stdout.trim(), vip);
});

/**
 * Fresh connections to web.demo back to back, each answered with the
 * backend's address: prints "MS ADDRESS" per answer ("MS ERR what" per
 * failure) and stops at the first address not in KNOWN (comma-separated),
 * or after SECONDS. Back to back, not one curl per fork: the load balancer
 * picks a backend at random, so the sampling period decides how long a new
 * backend goes unseen once it is in the map.
 */
const SAMPLER = `
import socket, sys, time
known, seconds = set(sys.argv[1].split(",")), float(sys.argv[2])
vip = socket.gethostbyname("web.demo")
end = time.time() + seconds
while time.time() < end:
    try:
        s = socket.create_connection((vip, 80), timeout=2)
        s.sendall(b"GET / HTTP/1.0\\r\\nHost: web.demo\\r\\n\\r\\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk: break
            data += chunk
        s.close()
        addr = data.split(b"\\r\\n\\r\\n", 1)[1].decode().strip()
    except OSError as e:
        addr = "ERR " + str(e)
    print(int(time.time() * 1000), addr, flush=True)
    if addr not in known and not addr.startswith("ERR"): break
`;

test('scaling to four via apply: the fourth serves within one second', async (t) => {
  const known = [...backendIps()].filter(([, n]) => n.startsWith('web-')).map(([ip]) => ip);
  assert.equal(known.length, 3);
  const loop = spawn(join(PACKAGE_ROOT, 'bin/ebmesh'), ['--instance', mesh.instance, 'exec', 'client', '--', 'python3', '-c', SAMPLER, known.join(','), '20'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let sampling: () => void = () => undefined;
  const firstAnswer = new Promise<void>((r) => (sampling = r));
  loop.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('\n')) sampling();
  });
  const done = once(loop, 'exit');
  await Promise.race([firstAnswer, done]);
  // From the moment apply returns (the change is accepted and in the store):
  // what a user who just scaled sees. The apply's own duration is reported.
  const started = Date.now();
  mesh.ok('apply', '-f', join(PACKAGE_ROOT, 'examples/demo-scale.yaml'));
  const t0 = Date.now();
  await done;
  const lines = out.trim().split('\n');
  assert.deepEqual(lines.filter((l) => l.includes(' ERR ')), [], 'no connection failed while scaling');
  const [at, addr] = lines.at(-1)!.split(' ');
  assert.equal(backendIps().get(addr ?? ''), 'web-4', `web-4 never answered (${lines.length} answers, the last from ${addr})`);
  const after = Number(at) - t0;
  t.diagnostic(`apply took ${t0 - started} ms; web-4 first answered ${after} ms after it returned (${lines.length} answers sampled)`);
  assert.ok(after <= 1000, `web-4 first answered ${after} ms after apply returned (apply took ${t0 - started} ms)`);
  assert.equal(spread(80).size, 4);
});

test('an endpoint leaving gets no new connections while an established one continues', () => {
  // Relabel web-4 out of the service: the process lives on, its endpoint goes.
  const ips = backendIps();
  const web4 = [...ips].find(([, n]) => n === 'web-4')?.[0];
  assert.ok(web4);
  // The same spec with other labels: the process is kept, only its endpoint goes.
  const spec = JSON.parse(mesh.ok('get', 'wl', 'web-4', '-n', 'demo', '-o', 'json')) as { spec: Record<string, unknown> };
  const yaml = `apiVersion: ebmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: web-4, namespace: demo, labels: {app: web-retired}}\nspec: ${JSON.stringify(spec.spec)}\n`;
  // Open a keep-alive connection to web-4 first, relabel, then use it again.
  const r = mesh.cli('exec', 'client', '--', 'python3', '-c', `
import http.client, subprocess, time
c = None
for i in range(200):
    x = http.client.HTTPConnection("web.demo", 80, timeout=3); x.request("GET", "/"); ip = x.getresponse().read().decode().strip()
    if ip == "${web4}": c = x; break
    x.close()
assert c, "never reached web-4"
p = subprocess.run(["${join(PACKAGE_ROOT, 'bin/ebmesh')}", "--instance", "${mesh.instance}", "apply", "-f", "-"], input=${JSON.stringify(yaml)}.encode(), capture_output=True)
assert p.returncode == 0, p.stderr
time.sleep(0.3)
c.request("GET", "/"); again = c.getresponse().read().decode().strip()
fresh = []
for i in range(60):
    x = http.client.HTTPConnection("web.demo", 80, timeout=3); x.request("GET", "/"); fresh.append(x.getresponse().read().decode().strip()); x.close()
print(again, "${web4}" in fresh)
`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `${web4} False`);
});

test('a workload that is slow to listen becomes ready when it does, however late (a busy node)', async () => {
  // 16 s: past the 15 s after which the lab used to stop probing and leave it unready for good.
  mesh.ok('apply', '-f', mesh.file('slow.yaml', `apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: slow, namespace: demo, labels: {app: slow}}
spec: {command: [sh, -c, 'sleep 16; exec python3 -m http.server 8080'], ports: [{name: http, containerPort: 8080}]}
`));
  const ready = () => (JSON.parse(mesh.ok('status', '-o', 'json')) as { workloads: Array<{ name: string; ready: boolean }> }).workloads.find((w) => w.name === 'slow')?.ready;
  assert.equal(ready(), false);
  const until = Date.now() + 40_000;
  while (Date.now() < until && !ready()) await new Promise((r) => setTimeout(r, 500));
  assert.equal(ready(), true);
  mesh.ok('delete', 'workload', 'slow', '-n', 'demo');
});

test('a Service with no endpoints refuses immediately', () => {
  mesh.ok('apply', '-f', mesh.file('empty.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: demo}\nspec:\n  ports: [{port: 80}]\n'));
  const r = mesh.sh('client', 'start=$(date +%s%N); curl -s -m 5 http://empty.demo/; code=$?; echo "$code $(( ($(date +%s%N) - start) / 1000000 ))"');
  const [code, ms] = r.stdout.trim().split(' ').map(Number);
  assert.equal(code, 7, 'curl exit 7: connection refused');
  assert.ok(ms! < 1000, `refused after ${ms} ms`);
});

test('bad input: a clear error naming file, resource and field, and nothing applied', () => {
  const before = mesh.ok('get', 'svc', '-n', 'demo', '-o', 'json');
  const bad = mesh.file('bad.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: demo}\nspec:\n  selector: {app: web}\n  ports:\n    - port: 99999\n');
  const r = mesh.cli('apply', '-f', bad);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:7: Service demo/other: spec.ports\\[0\\].port: must be a port from 1 to 65535`));
  assert.equal(mesh.ok('get', 'svc', '-n', 'demo', '-o', 'json'), before);
  const dup = mesh.file('dup.yaml', `apiVersion: v1\nkind: Service\nmetadata: {name: dup, namespace: demo}\nspec:\n  clusterIP: ${JSON.parse(before)[0].spec.clusterIP}\n  ports: [{port: 80}]\n`);
  assert.match(mesh.cli('apply', '-f', dup).stderr, /spec.clusterIP: .* is already the VIP of Service demo\/(web|empty)/);
});

test('apply is idempotent and exec passes the exit code through', () => {
  const out = mesh.ok('apply', '-f', join(PACKAGE_ROOT, 'examples/demo.yaml'));
  assert.match(out, /Service demo\/web unchanged/);
  assert.equal(mesh.sh('client', 'exit 7').code, 7);
  assert.equal(mesh.cli('exec', 'nosuch', '--', 'true').code, 1);
});

test('the mesh changed no iptables or nftables rule', () => {
  assert.equal(hostRuleset(), rulesBefore);
});
