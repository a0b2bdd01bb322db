/**
 * Enforcement that a workload cannot get around, and that has no gap while
 * the agent restarts: x/b accepts only port 81; x/a may send nowhere but x/b.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { TestMesh } from '../helpers/mesh.js';
import { LAB_SCRIPT } from '../helpers/policy-lab.js';

let mesh: TestMesh;
let files: string[];
let ip: { a: string; b: string; c: string };
let vip: string;

const base = (cidr: string) => cidr.split('.').slice(0, 3).join('.');

before(async () => {
  mesh = new TestMesh('polenf');
  const net = base(mesh.podCIDR);
  ip = { a: `${net}.10`, b: `${net}.11`, c: `${net}.12` };
  const wl = (name: string, addr: string) => `apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: ${name}, namespace: x, labels: {pod: ${name}}}
spec: {ip: ${addr}, ports: [{name: web, containerPort: 80}, {containerPort: 81}], command: [python3, ${LAB_SCRIPT}, serve, "80,81"]}
`;
  const world = mesh.file('world.yaml', [
    'apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n', wl('a', ip.a), wl('b', ip.b), wl('c', ip.c),
    'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: x}\nspec: {selector: {pod: b}, ports: [{name: main, port: 8080, targetPort: 80}, {name: alt, port: 8081, targetPort: 81}]}\n',
    `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-only-81, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress: [{ports: [{port: 81}, {port: 81, protocol: UDP}]}]
`,
    `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-to-b-only, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {matchLabels: {pod: b}}}]}]
`,
  ].join('---\n'));
  files = ['-f', mesh.meshConfigFile(), '-f', world];
  mesh.ok('up', ...files);
  for (const until = Date.now() + 30_000; ;) {
    const st = JSON.parse(mesh.ok('status', '-o', 'json')) as { workloads: Array<{ ready: boolean }> };
    if (st.workloads.length === 3 && st.workloads.every((w) => w.ready)) break;
    assert.ok(Date.now() < until, 'workloads not ready');
    await new Promise((r) => setTimeout(r, 200));
  }
  vip = (JSON.parse(mesh.ok('get', 'svc', 'web', '-n', 'x', '-o', 'json')) as { spec: { clusterIP: string } }).spec.clusterIP;
});

after(() => mesh?.down());

function py(workload: string, code: string): string {
  const r = mesh.cli('exec', `x/${workload}`, '--', 'python3', '-c', code);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

const connect = (addr: string, port: number, bind = '') => `
import socket
s = socket.socket(); s.settimeout(1)
${bind ? `s.bind(("${bind}", 0))` : ''}
try:
    s.connect(("${addr}", ${port})); print("connected")
except OSError as e:
    print(type(e).__name__, e.errno)`;

test('denied connects fail at once with EPERM; the VIP and the backend address are judged alike', () => {
  assert.equal(py('a', connect(ip.b, 81)), 'connected');
  assert.equal(py('a', connect(ip.b, 80)), 'PermissionError 1');
  assert.equal(py('a', connect(vip, 8080)), 'PermissionError 1', 'VIP port 8080 -> backend port 80');
  assert.equal(py('a', connect(vip, 8081)), 'connected');
  assert.equal(py('a', connect(ip.c, 81)), 'PermissionError 1', 'egress of a allows only b');
});

test('policy explain names the deciding policy and rule, also through a Service', () => {
  const deny = mesh.cli('policy', 'explain', '--from', 'x/a', '--to', 'x/b:80/TCP');
  assert.equal(deny.code, 3);
  assert.match(deny.stdout, /^DENY/);
  assert.match(deny.stdout, /ingress of x\/b: denied, isolated by x\/b-only-81/);
  const allow = mesh.cli('policy', 'explain', '--from', 'x/a', '--to', 'web:8081/TCP');
  assert.equal(allow.code, 0, allow.stdout + allow.stderr);
  assert.match(allow.stdout, /allowed by x\/a-to-b-only egress rule 0/);
  assert.match(allow.stdout, /allowed by x\/b-only-81 ingress rule 0/);
  const bad = mesh.cli('policy', 'explain', '--from', 'x/a', '--to', 'nosuch:80');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /no workload or service nosuch/);
});

test('a workload that takes another address is dropped as spoofing', () => {
  const before = (JSON.parse(mesh.ok('policy', 'drops', '-o', 'json')) as { counts: Record<string, number> }).counts.spoofed_source ?? 0;
  const r = mesh.cli('exec', 'x/a', '--', 'sh', '-c',
    `ip addr add ${base(mesh.podCIDR)}.99/24 dev eth0 && python3 -c '${connect(ip.b, 81, `${base(mesh.podCIDR)}.99`).replace(/'/g, '"')}'; ip addr del ${base(mesh.podCIDR)}.99/24 dev eth0`);
  assert.equal(r.stdout.trim(), 'TimeoutError None', r.stdout + r.stderr);
  const after = (JSON.parse(mesh.ok('policy', 'drops', '-o', 'json')) as { counts: Record<string, number> }).counts.spoofed_source ?? 0;
  assert.ok(after > before, `spoofed_source ${before} -> ${after}`);
});

test('a raw socket stays under policy', () => {
  // UDP checksum 0 is "none", so this datagram would be delivered if it got out.
  const out = py('a', `
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
try:
    s.sendto(struct.pack("!HHHH", 40000, 81, 10, 0) + b"hi", ("${ip.c}", 0)); print("sent")
except OSError as e:
    print(type(e).__name__)`);
  assert.equal(out, 'PermissionError');
});

test('agent restarts: a prober hammering a denied port never connects', async () => {
  const stop = join(mesh.dir, 'stop-hammer');
  // Bounded: at most 50000 attempts and 120 s, or until the stop file appears.
  const child = spawn(join(PACKAGE_ROOT, 'bin/ebmesh'), ['--instance', mesh.instance, 'exec', 'x/a', '--',
    'python3', LAB_SCRIPT, 'hammer', ip.b, '80', '50000', '120', stop], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = once(child, 'exit');
  await new Promise((r) => setTimeout(r, 1000));
  for (let i = 0; i < 3; i++) {
    const pid = (JSON.parse(mesh.ok('status', '-o', 'json')) as { pid: number }).pid;
    process.kill(pid, 'SIGTERM');
    const until = Date.now() + 20_000;
    while (existsSync(`/proc/${pid}`) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.ok(!existsSync(`/proc/${pid}`), 'the daemon did not stop');
    await new Promise((r) => setTimeout(r, 300)); // the prober runs with no agent at all
    mesh.ok('up', ...files);
  }
  await new Promise((r) => setTimeout(r, 500));
  writeFileSync(stop, '');
  await exited;
  const m = /connected=(\d+) failed=(\d+)/.exec(out);
  assert.ok(m, `prober said: ${out}`);
  assert.equal(Number(m[1]), 0, out);
  assert.ok(Number(m[2]) > 100, out);
  // And the allowed port still works after the restarts.
  assert.equal(py('a', connect(ip.b, 81)), 'connected');
});
