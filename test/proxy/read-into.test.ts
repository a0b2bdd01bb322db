/**
 * Both sides of the HTTP/1 proxy read into one reused buffer (read-into.ts):
 * whatever outlives a read (a head split over reads, a body, pipelined
 * bytes, a whole response queued behind a slow client) must be a copy.
 * These run real sockets on loopback, with a raw backend and raw clients
 * whose write patterns we choose.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { dial, route, startProxy, to, type Started } from './harness.js';

const VIP = '10.96.0.40';
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A body of `n` bytes that says which answer it is on every byte run ("00007 00007 …"). */
const tagged = (tag: number, n: number): Buffer => Buffer.from(`${String(tag).padStart(5, '0')} `.repeat(Math.ceil(n / 6)).slice(0, n), 'latin1');

/** A 1 MiB body whose bytes differ from offset to offset (a shifted or reused chunk changes its hash). */
const PATTERN = Buffer.alloc(1 << 20);
for (let i = 0; i < PATTERN.length; i++) PATTERN[i] = (i * 7 + (i >> 11)) & 0xff;

interface Req {
  method: string;
  path: string;
  body: Buffer;
}

/**
 * A raw HTTP/1.1 backend: answers by path, one request at a time per
 * connection. /tiny is written a few bytes at a time; /pattern is 1 MiB;
 * /tagged/N is 20,000 bytes tagged N, in one write; /echo answers with the
 * hash and length of the request body; /slow-echo reads the body only after
 * a pause.
 */
async function rawBackend(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const answer = async (s: net.Socket, r: Req): Promise<void> => {
    if (r.path === '/tiny') {
      const bytes = Buffer.from(`HTTP/1.1 200 OK\r\nx-long: ${'v'.repeat(300)}\r\nx-other: two words\r\ncontent-length: 17\r\n\r\ntiny-body-in-bits`, 'latin1');
      for (let i = 0; i < bytes.length; i += 3) {
        s.write(bytes.subarray(i, i + 3));
        await sleep(1);
      }
      return;
    }
    let body: Buffer;
    if (r.path === '/pattern') body = PATTERN;
    else if (r.path.startsWith('/tagged/')) body = tagged(Number(r.path.slice(8)), 20_000);
    else body = Buffer.from(JSON.stringify({ sha: sha(r.body), length: r.body.length }));
    s.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`, 'latin1'), body]));
  };
  const server = net.createServer((s) => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    let busy = false;
    let slowed = false;
    const step = async (): Promise<void> => {
      if (busy) return;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.toString('latin1', 0, end);
      const [method = '', path = ''] = head.split(' ');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (path === '/slow-echo' && !slowed) {
        slowed = true;
        busy = true;
        s.pause(); // the proxy's writes to us back up while we do not read
        await sleep(300);
        s.resume();
        busy = false;
      }
      if (buf.length < end + 4 + length) return;
      const r = { method, path, body: buf.subarray(end + 4, end + 4 + length) };
      buf = buf.subarray(end + 4 + length);
      slowed = false;
      busy = true;
      await answer(s, r);
      busy = false;
      void step();
    };
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      void step();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

interface Answer {
  status: number;
  head: string;
  body: Buffer;
}

/** Reads `count` Content-Length-framed answers from a raw client socket, starting to read only after `waitMs`. */
function readAnswers(s: net.Socket, count: number, waitMs = 0): Promise<Answer[]> {
  return new Promise((resolve, reject) => {
    const out: Answer[] = [];
    let buf = Buffer.alloc(0);
    s.pause();
    setTimeout(() => s.resume(), waitMs);
    s.on('error', reject);
    s.on('close', () => reject(new Error(`connection closed after ${out.length} of ${count} answers`)));
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.toString('latin1', 0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1]);
        assert.ok(Number.isFinite(length), `an answer framed by content-length: ${head}`);
        if (buf.length < end + 4 + length) return;
        out.push({ status: Number(head.slice(9, 12)), head, body: Buffer.from(buf.subarray(end + 4, end + 4 + length)) });
        buf = buf.subarray(end + 4 + length);
        if (out.length === count) {
          s.removeAllListeners('close');
          resolve(out);
          return;
        }
      }
    });
  });
}

const post = (path: string, body: Buffer): Buffer => Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nhost: web\r\ncontent-length: ${body.length}\r\n\r\n`, 'latin1'), body]);
const get = (path: string): string => `GET ${path} HTTP/1.1\r\nhost: web\r\n\r\n`;

describe('HTTP/1 reads into a reused buffer', () => {
  let backend: Awaited<ReturnType<typeof rawBackend>>;
  let p: Started;
  const open = async (): Promise<net.Socket> => {
    const s = dial(p, to(VIP, 80));
    s.setNoDelay(true);
    await new Promise((r) => s.once('connect', r));
    return s;
  };
  before(async () => {
    backend = await rawBackend();
    p = await startProxy({
      services: [{ name: 'web', namespace: 'default', vip: VIP, port: 80, protocol: 'auto', endpoints: [{ ip: '127.0.0.1', port: backend.port }] }],
      httpRoutes: [route('web', 'web', [{ backendRefs: [{ name: 'web', port: 80 }] }])],
    });
  });
  after(async () => {
    await p.proxy.close();
    await backend.close();
  });

  it('reads an upstream answer that arrives three bytes per read', async () => {
    const s = await open();
    const answers = readAnswers(s, 2);
    // Twice on one connection: the second reuses the pooled upstream connection.
    s.write(get('/tiny'));
    await sleep(50);
    s.write(get('/tiny'));
    for (const a of await answers) {
      assert.equal(a.status, 200);
      assert.match(a.head, new RegExp(`\r\nx-long: ${'v'.repeat(300)}\r\n`));
      assert.match(a.head, /\r\nx-other: two words\r\n/);
      assert.equal(a.body.toString(), 'tiny-body-in-bits');
    }
    s.destroy();
  });

  it('reads a request, head and body, sent two bytes per write', async () => {
    const s = await open();
    const answers = readAnswers(s, 1);
    const body = Buffer.from('a body that comes in pieces, like its head');
    const bytes = post('/echo', body);
    for (let i = 0; i < bytes.length; i += 2) {
      s.write(bytes.subarray(i, i + 2));
      await sleep(1);
    }
    const [a] = await answers;
    assert.deepEqual(JSON.parse(a!.body.toString()), { sha: sha(body), length: body.length });
    s.destroy();
  });

  it('answers two pipelined requests with bodies that arrive in one read, in order', async () => {
    const s = await open();
    const answers = readAnswers(s, 2);
    const one = Buffer.from('first body');
    const two = tagged(2, 3000);
    s.write(Buffer.concat([post('/echo', one), post('/echo', two)]));
    const [a, b] = await answers;
    assert.deepEqual(JSON.parse(a!.body.toString()), { sha: sha(one), length: one.length });
    assert.deepEqual(JSON.parse(b!.body.toString()), { sha: sha(two), length: two.length });
    s.destroy();
  });

  it('carries bodies larger than the read buffer both ways, to a slow backend and to a slow client', async () => {
    const s = await open();
    const up = readAnswers(s, 1);
    s.write(post('/slow-echo', PATTERN));
    const [a] = await up;
    assert.deepEqual(JSON.parse(a!.body.toString()), { sha: sha(PATTERN), length: PATTERN.length });
    const down = readAnswers(s, 1, 300);
    s.write(get('/pattern'));
    const [b] = await down;
    assert.equal(b!.body.length, PATTERN.length);
    assert.equal(sha(b!.body), sha(PATTERN));
    s.destroy();
  });

  it('keeps whole answers intact while a client that does not read holds them, as other connections read on', async () => {
    // 500 pipelined requests for 20 kB answers (10 MB), each of which the backend
    // sends in one write: more than the sockets buffer, so the proxy queues
    // answers for this client while it reads the next ones (and another
    // client's) into the same buffer.
    const s = await open();
    const n = 500;
    const held = readAnswers(s, n, 500);
    let all = '';
    for (let i = 0; i < n; i++) all += get(`/tagged/${i}`);
    s.write(all);
    const other = await open();
    for (let i = 0; i < 20; i++) {
      const o = readAnswers(other, 1);
      other.write(get(`/tagged/${90_000 + i}`));
      const [x] = await o;
      other.removeAllListeners('data');
      other.removeAllListeners('error');
      assert.ok(x!.body.equals(tagged(90_000 + i, 20_000)));
    }
    other.destroy();
    const answers = await held;
    answers.forEach((a, i) => assert.ok(a.body.equals(tagged(i, 20_000)), `answer ${i} came back as sent`));
    s.destroy();
  });
});
