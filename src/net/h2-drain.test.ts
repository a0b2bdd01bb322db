import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { drainSession } from './h2-drain.js';

// A client that sends a request every 5 ms on one session until it is told
// GOAWAY, then waits for the answers, and prints how its streams ended.
const STEADY_CLIENT = `
import http2 from 'node:http2';
const s = http2.connect(process.argv[1]);
const n = { ok: 0, refused: 0, other: 0, unsent: 0 };
let inflight = 0;
let stop = false;
const finish = () => { console.log(JSON.stringify(n)); s.destroy(); process.exit(0); };
s.on('goaway', () => {
  stop = true;
  // A request made in the same turn as the GOAWAY was read is never sent (the client's nghttp2 starts no stream after one): not the server's doing.
  setTimeout(() => { n.unsent = inflight; finish(); }, 2000);
});
const tick = setInterval(() => {
  if (stop) return clearInterval(tick);
  inflight++;
  let status = 0;
  const r = s.request({ ':path': '/' }, { endStream: true });
  r.on('response', (h) => (status = h[':status']));
  r.on('error', () => {});
  r.resume();
  r.on('close', () => {
    inflight--;
    if (status === 200) n.ok++;
    else if (r.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) n.refused++;
    else n.other++;
    if (stop && inflight === 0) finish();
  });
}, 5);
`;

test('drainSession: every stream gets an answer or REFUSED_STREAM (never processed, safe to retry), none hangs or fails otherwise, also when the server reads them late', async () => {
  const graceMs = 100;
  const sessions: http2.ServerHttp2Session[] = [];
  let answered = 0;
  const server = http2.createServer((_req, res) => {
    res.end('ok');
    if (++answered !== 10) return;
    drainSession(sessions[0]!, graceMs);
    // A busy worker: the client's next streams wait unread in the socket until after the grace time.
    const until = Date.now() + graceMs * 4;
    while (Date.now() < until);
  });
  server.on('session', (s) => sessions.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  try {
    const child = spawn(process.execPath, ['--input-type=module', '-e', STEADY_CLIENT, `http://127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    for await (const line of createInterface({ input: child.stdout! })) out += line;
    const n = JSON.parse(out) as { ok: number; refused: number; other: number; unsent: number };
    // Sent before the client read the GOAWAY, read by the server after it went out: refused, never half-done.
    assert.equal(n.other, 0, `streams that failed otherwise than refused: ${out}`);
    assert.equal(n.unsent, 0, `streams left without an answer or a refusal: ${out}`);
    assert.ok(n.ok >= 10, out);
    assert.equal(sessions.length, 1);
  } finally {
    server.close();
  }
});

test('drainSession: GOAWAY with NO_ERROR at once, the session closed only after the grace time', async () => {
  const server = http2.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  try {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    const session = await new Promise<http2.ServerHttp2Session>((r) => server.once('session', r));
    const goaway = new Promise<number>((r) => client.once('goaway', (code) => r(code)));
    const t0 = Date.now();
    drainSession(session, 150);
    await new Promise((r) => session.once('close', r));
    assert.ok(Date.now() - t0 >= 140, `closed after ${Date.now() - t0} ms, before the grace time`);
    assert.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR);
    client.close();
  } finally {
    server.close();
  }
});
