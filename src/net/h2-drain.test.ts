import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import net from 'node:net';
import { drainSession, MAX_STREAM_ID, ShutdownNotice } from './h2-drain.js';
import { withPrefix } from './prefixed-stream.js';

// A client that sends a request every 5 ms on one session until it is told
// GOAWAY, then waits for the answers, and prints how its streams ended:
// refused by the server, or refused by its own nghttp2 ("local": made in the
// turn the first GOAWAY was read, never sent; the server has refused nothing
// while the last GOAWAY it read says 2^31-1).
const STEADY_CLIENT = `
import http2 from 'node:http2';
const s = http2.connect(process.argv[1]);
const n = { ok: 0, refused: 0, local: 0, other: 0, unsent: 0, goaways: [] };
let inflight = 0;
let stop = false;
let lastGoaway;
const finish = () => { console.log(JSON.stringify(n)); s.destroy(); process.exit(0); };
s.on('goaway', (code, last) => {
  lastGoaway = last;
  n.goaways.push(last);
  if (stop) return;
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
    else if (r.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) lastGoaway === 2 ** 31 - 1 ? n.local++ : n.refused++;
    else n.other++;
    if (stop && inflight === 0) finish();
  });
}, 5);
`;

interface Steady { ok: number; refused: number; local: number; other: number; unsent: number; goaways: number[] }

/**
 * STEADY_CLIENT against an HTTP/2 server whose sessions drain after their
 * 10th answer while the server's event loop is then held up for 400 ms (a
 * busy worker: the client's next streams wait unread in the socket). With
 * `notice`, the sessions run over withPrefix (the node proxy's transport)
 * and drain with their ShutdownNotice.
 */
async function drainUnderLoad(notice: boolean): Promise<{ n: Steady; out: string; sessions: number }> {
  const graceMs = 100;
  const sessions: http2.ServerHttp2Session[] = [];
  let answered = 0;
  const h2 = http2.createServer((_req, res) => {
    res.end('ok');
    if (++answered !== 10) return;
    drainSession(sessions[0]!, notice ? { notice: notices.get(sessions[0]!) } : { graceMs });
    const until = Date.now() + graceMs * 4;
    while (Date.now() < until);
  });
  const notices = new Map<http2.ServerHttp2Session, ShutdownNotice>();
  h2.on('session', (s) => sessions.push(s));
  const server = notice
    ? net.createServer((socket) => {
      const { stream, notice: n } = withPrefix(socket, Buffer.alloc(0));
      h2.once('session', (s) => notices.set(s, n));
      h2.emit('connection', stream);
    })
    : h2;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  try {
    const child = spawn(process.execPath, ['--input-type=module', '-e', STEADY_CLIENT, `http://127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    for await (const line of createInterface({ input: child.stdout! })) out += line;
    return { n: JSON.parse(out) as Steady, out, sessions: sessions.length };
  } finally {
    server.close();
  }
}

test('drainSession with nghttp2\'s GOAWAY: every stream gets an answer or REFUSED_STREAM (never processed, safe to retry), none hangs or fails otherwise, also when the server reads them late', async (t) => {
  const { n, out, sessions } = await drainUnderLoad(false);
  t.diagnostic(out);
  // Sent before the client read the GOAWAY, read by the server after it went out: refused, never half-done.
  assert.equal(n.other, 0, `streams that failed otherwise than refused: ${out}`);
  assert.equal(n.unsent, 0, `streams left without an answer or a refusal: ${out}`);
  assert.ok(n.ok >= 10, out);
  assert.equal(sessions, 1);
});

test('drainSession with a ShutdownNotice: the server refuses no stream, also when it reads them late; the real GOAWAY follows the notice', async (t) => {
  const { n, out, sessions } = await drainUnderLoad(true);
  t.diagnostic(out);
  assert.equal(n.refused, 0, `streams the server refused: ${out}`);
  assert.equal(n.other, 0, out);
  assert.equal(n.unsent, 0, out);
  assert.ok(n.ok >= 10, out);
  assert.equal(n.goaways[0], MAX_STREAM_ID, `the notice comes first: ${out}`);
  assert.equal(sessions, 1);
});

test('ShutdownNotice: the notice goes between two frames however the session\'s bytes are cut, and only once', () => {
  const frame = (type: number, stream: number, payload: number) => {
    const b = Buffer.alloc(9 + payload, 0xab);
    b.writeUIntBE(payload, 0, 3);
    b[3] = type;
    b[4] = 0;
    b.writeUInt32BE(stream, 5);
    return b;
  };
  const frames = [frame(4, 0, 6), frame(1, 1, 40), frame(0, 1, 1000), frame(4, 0, 0), frame(0, 3, 70_000), frame(6, 0, 8)];
  const wire = Buffer.concat(frames);
  const starts = frames.reduce<number[]>((a, f) => [...a, (a.at(-1) ?? 0) + (a.length ? frames[a.length - 1]!.length : 0)], []);
  // Every cut of the bytes into two writes, the notice asked for before, between or after them.
  for (const cut of [0, 1, 5, 9, 10, 48, 49, 50, 1000, 1058, 1059, 1067, 1068, 1069, 71_000, wire.length - 3]) {
    for (const when of [0, 1, 2]) {
      const out: Buffer[] = [];
      const n = new ShutdownNotice((b, cb) => { out.push(Buffer.from(b)); cb?.(); });
      const parts = [wire.subarray(0, cut), wire.subarray(cut)];
      parts.forEach((p, i) => {
        if (when === i) n.send();
        n.pass(p, () => undefined);
      });
      if (when === 2) n.send();
      n.send();
      const got = Buffer.concat(out);
      assert.equal(got.length, wire.length + 17, `cut ${cut}, asked ${when}`);
      const at = got.indexOf(Buffer.from([0, 0, 8, 7, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]));
      assert.ok(starts.includes(at) || at === wire.length, `cut ${cut}, asked ${when}: notice at ${at}, not a frame boundary`);
      assert.ok(Buffer.concat([got.subarray(0, at), got.subarray(at + 17)]).equals(wire), `cut ${cut}, asked ${when}: the frames are intact`);
    }
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
    drainSession(session, { graceMs: 150 });
    await new Promise((r) => session.once('close', r));
    assert.ok(Date.now() - t0 >= 140, `closed after ${Date.now() - t0} ms, before the grace time`);
    assert.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR);
    client.close();
  } finally {
    server.close();
  }
});
