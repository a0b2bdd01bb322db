import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownedProxyPid, proxyFiles, readMessages, stopProxyPid, writeMessage } from './control.js';

const dir = mkdtempSync(join(tmpdir(), 'ebmesh-control-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function pair(): Promise<[net.Socket, net.Socket]> {
  const path = join(dir, `s${Math.random().toString(36).slice(2)}.sock`);
  return new Promise((resolve) => {
    let c: net.Socket;
    const server = net.createServer((s) => { server.close(); resolve([c, s]); });
    server.listen(path, () => { c = net.connect(path); });
  });
}

test('messages split across writes and several in one write all arrive, in order', async () => {
  const [a, b] = await pair();
  const got: unknown[] = [];
  const done = new Promise<void>((r) => readMessages<{ n: number }>(b, (m) => { got.push(m); if (m.n === 3) r(); }));
  a.write('{"n":1}\n{"n"');
  await new Promise((r) => setTimeout(r, 20));
  a.write(':2}\n');
  writeMessage(a, { n: 3 });
  await done;
  assert.deepEqual(got, [{ n: 1 }, { n: 2 }, { n: 3 }]);
  a.destroy();
  b.destroy();
});

test('a line that is not JSON closes the connection', async () => {
  const [a, b] = await pair();
  const closed = new Promise((r) => b.once('close', r));
  b.on('error', () => undefined);
  readMessages(b, () => assert.fail('no message expected'));
  a.on('error', () => undefined);
  a.write('hello\n');
  await closed;
  a.destroy();
});

test('ownedProxyPid: only a live process whose command line names our proxy and our socket', async () => {
  const files = proxyFiles({ runDir: dir, stateDir: dir });
  assert.equal(ownedProxyPid(files), undefined, 'no PID file');
  // A PID that belongs to something else (this test runner) is never ours.
  writeFileSync(files.pidFile, String(process.pid));
  assert.equal(ownedProxyPid(files), undefined);
  writeFileSync(files.pidFile, 'not a pid');
  assert.equal(ownedProxyPid(files), undefined);
  // A stand-in with the proxy's command line: script path and control socket.
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '/x/dist/src/proxy/main.js', '--control', files.socket], { stdio: 'ignore' });
  await new Promise((r) => child.once('spawn', r));
  writeFileSync(files.pidFile, String(child.pid));
  assert.equal(ownedProxyPid(files), child.pid);
  // Another instance's socket: not ours.
  assert.equal(ownedProxyPid({ ...files, socket: join(dir, 'other.sock') }), undefined);
  const gone = new Promise((r) => child.once('exit', r));
  await stopProxyPid(child.pid!);
  await gone;
  assert.equal(ownedProxyPid(files), undefined, 'a dead PID is not ours');
});
