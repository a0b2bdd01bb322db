/**
 * The store's disk fills up, under load: a one-host node whose state
 * directory (store.json and all) is a small tmpfs made for this test. Once
 * it is full, apply fails with an error that says so and names the store,
 * nothing of it is written (the store file is the one before, no temporary
 * file is left), the data path serves on without a failed request, and once
 * space is freed, apply works again.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TestMesh } from '../helpers/mesh.js';
import { CLIENT_LOOP, indent, loopTally, nameServerWorkload } from '../helpers/cluster.js';
import { instancePaths } from '../../src/paths.js';

const mesh = new TestMesh('fdk');
const paths = instancePaths(mesh.instance);
const filler = join(paths.stateDir, 'filler');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let mounted = false;

const web = (i: number) => nameServerWorkload({ name: `web-${i}`, namespace: 'demo', node: 'node-1', labels: 'app: web', serviceAccount: 'web' }).replace('  node: node-1\n', '');
const yaml = `${[1, 2].map(web).join('')}apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: demo, labels: {app: client}}
spec:
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
`;

const sh = (cmd: string, ...args: string[]) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
};

before(() => {
  // The whole state directory on a tmpfs of its own: the store is the file that must survive it filling up.
  mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
  sh('mount', '-t', 'tmpfs', '-o', 'size=32m,mode=0700', `ebmesh-${mesh.instance}`, paths.stateDir);
  mounted = true;
  mesh.ok('up', '-f', mesh.meshConfigFile(), '-f', mesh.file('demo.yaml', yaml));
});

after(() => {
  rmSync(filler, { force: true });
  mesh.down();
  if (mounted) spawnSync('umount', [paths.stateDir]);
  rmSync(paths.stateDir, { recursive: true, force: true });
  rmSync(paths.runDir, { recursive: true, force: true });
});

const service = (name: string) => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: demo}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
`;

test('a full store disk: apply fails clearly and writes nothing, the data path serves on, apply works once space is freed', async () => {
  const loopPy = join(paths.stateDir, 'workloads', 'demo', 'client', 'loop.py');
  const looping = mesh.shRunning('client', `python3 ${loopPy} web.demo 12`);
  await looping.running;
  await sleep(1000);
  const storeBefore = readFileSync(paths.storeFile, 'utf8');
  // dd stops at ENOSPC (and says so): the filesystem is full.
  spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { encoding: 'utf8' });
  const full = spawnSync('df', ['--output=avail', '-B1', paths.stateDir], { encoding: 'utf8' }).stdout.trim().split('\n').pop();
  assert.equal(Number(full), 0, `the store's filesystem is full (available: ${full})`);

  const refused = mesh.cli('apply', '-f', mesh.file('extra.yaml', service('extra')));
  process.stdout.write(`# apply on a full disk: exit ${refused.code}: ${refused.stderr.trim()}\n`);
  assert.notEqual(refused.code, 0);
  // Where, what, and that nothing was kept.
  assert.ok(refused.stderr.includes(`${paths.storeFile}: cannot write the store: no space left on its disk; nothing of this change was stored`), refused.stderr);
  assert.equal(readFileSync(paths.storeFile, 'utf8'), storeBefore, 'the store file is the one before the apply');
  assert.deepEqual(readdirSync(paths.stateDir).filter((f) => f.endsWith('.tmp')), [], 'no half-written copy left');
  assert.notEqual(mesh.cli('get', 'service', 'extra', '-n', 'demo').code, 0, 'the refused Service is not there');
  const st = mesh.cli('status');
  assert.equal(st.code, 0, `status answers while the disk is full: ${st.stderr}`);

  const t = loopTally(await looping.done);
  process.stdout.write(`# fault disk full: requests ${t.keepalive_ok + t.keepalive_fail + t.new_ok + t.new_fail} (keep-alive ${t.keepalive_ok}, new connections ${t.new_ok}), failed ${t.keepalive_fail + t.new_fail}, resets ${t.resets}\n`);
  assert.equal(t.keepalive_fail + t.new_fail, 0, JSON.stringify(t));
  assert.equal(t.resets, 0);
  assert.ok(t.keepalive_ok > 60 && t.new_ok > 20, JSON.stringify(t));

  rmSync(filler);
  mesh.ok('apply', '-f', mesh.file('extra.yaml', service('extra')));
  const r = mesh.sh('client', 'for i in $(seq 1 20); do curl -s --max-time 3 http://extra.demo/; echo; done | sort -u');
  assert.deepEqual(r.stdout.split('\n').filter(Boolean), ['web-1', 'web-2'], r.stderr);
  assert.ok(existsSync(paths.storeFile));
});
