/**
 * What the native relay promises, on real sockets: back-pressure end to
 * end, resets crossing as resets, a caller's TCP connection forwarded into
 * the tunnel, the two-step GOAWAY refusing nothing, a stream the peer
 * refused unprocessed opened again with its bytes, TCP pass-through, and an
 * endpoint that garbage from the network does not take down. (The tunnel's
 * own contract is in src/tunnel/tunnel.test.ts.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { CertificateAuthority, createRoot, newKeyAndCsr } from '../ca/index.js';
import { CredentialStore, TunnelClient, TunnelServer, nodeSpiffeId, type CredentialMaterial } from '../tunnel/index.js';
import { relayPipe, takeSocket } from './index.js';

const TD = 'relay.test';
let ca: CertificateAuthority;
const closers: Array<() => unknown> = [];

async function svid(id: string): Promise<CredentialMaterial> {
  const { keyPem, csrPem } = await newKeyAndCsr(id);
  const s = await ca.issue(csrPem, id, 300);
  return { keyPem, certPem: s.certPem, bundlePem: ca.bundlePem };
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** Echoes; on the caller's FIN answers "bye N" and ends. */
async function echo(): Promise<number> {
  return listen(net.createServer({ allowHalfOpen: true }, (s) => {
    let n = 0;
    s.on('data', (d) => { n += d.length; s.write(d); });
    s.on('end', () => s.end(`bye ${n}`));
    s.on('error', () => undefined);
  }));
}

async function tunnel(o: { reusePort?: boolean; port?: number } = {}) {
  const srv = new TunnelServer({ credentials: new CredentialStore(await svid(nodeSpiffeId(TD, 'b'))), trustDomain: TD });
  const { port } = await srv.listen(o.port ?? 0, '127.0.0.1', { reusePort: !!o.reusePort });
  closers.push(() => srv.close(true));
  return { srv, port };
}

async function client() {
  const c = new TunnelClient({ credentials: new CredentialStore(await svid(nodeSpiffeId(TD, 'a'))), trustDomain: TD, connectTimeoutMs: 3000 });
  closers.push(() => c.close());
  return c;
}

function collect(s: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
  });
}

const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TCP connection to a listener that hands each accepted socket to `take`; resolves with the client side once connected (or failed). */
async function viaListener(take: (s: net.Socket) => void): Promise<net.Socket> {
  const port = await listen(net.createServer({ pauseOnConnect: true }, take));
  const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  await new Promise((r) => { c.once('connect', r); c.once('error', r); });
  return c;
}

/** The error a socket ends with (the one it may already have had), or undefined for a clean close. */
function ending(s: net.Socket, poke?: Buffer | string): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const had = (s as unknown as { errored?: NodeJS.ErrnoException | null }).errored;
    if (had) { resolve(had); return; }
    s.on('error', (e) => resolve(e));
    s.on('close', () => resolve(undefined));
    if (poke !== undefined && !s.destroyed) s.write(poke);
  });
}

before(async () => {
  ca = await CertificateAuthority.load(await createRoot(TD));
});
after(async () => { for (const c of closers.reverse()) await c(); });

describe('the tunnel in the relay', () => {
  it('pushes back: a destination that reads nothing stops the sender, and then gets every byte', async () => {
    let held: net.Socket | undefined;
    const got: Buffer[] = [];
    const sink = await listen(net.createServer((s) => { held = s; s.pause(); s.on('data', (d) => got.push(d)); }));
    const { port } = await tunnel();
    const c = await client();
    const { stream, response } = c.open({ host: '127.0.0.1', port }, { ip: '127.0.0.1', port: sink });
    await response;
    const chunk = randomBytes(64 << 10);
    let accepted = 0;
    // Write until the stream has refused more for a while: what it took is bounded by windows and buffers, not by what we offer.
    for (let i = 0; i < 2000; i++) {
      if (!stream.write(chunk)) {
        const drained = await Promise.race([new Promise((r) => stream.once('drain', () => r(true))), sleep(500).then(() => false)]);
        if (!drained) break;
      }
      accepted += chunk.length;
    }
    assert.ok(accepted < 64 << 20, `the sender was never stopped: ${accepted} bytes taken`);
    held!.resume();
    stream.end();
    await new Promise<void>((r) => held!.once('end', () => r()));
    const total = got.reduce((n, b) => n + b.length, 0);
    assert.ok(total >= accepted, `the destination got ${total} of ${accepted} bytes`);
  });

  it('a reset crosses as a reset, both ways', async () => {
    const seen: string[] = [];
    const resetter = await listen(net.createServer((s) => {
      s.on('error', (e: NodeJS.ErrnoException) => seen.push(`server ${e.code}`));
      s.once('data', () => s.resetAndDestroy());
    }));
    const { port } = await tunnel();
    const c = await client();
    // The destination resets: the caller's TCP connection (forwarded) is reset.
    const caller = await viaListener((s) => {
      const { fd, pending } = takeSocket(s);
      c.forward(fd, { host: '127.0.0.1', port }, { ip: '127.0.0.1', port: resetter }, {}, pending);
    });
    assert.equal((await ending(caller, 'x'))?.code, 'ECONNRESET');
    // The caller resets: the destination sees a reset.
    let dst: net.Socket | undefined;
    const holder = await listen(net.createServer((s) => { dst = s; s.on('error', (e: NodeJS.ErrnoException) => seen.push(`holder ${e.code}`)); }));
    const caller2 = await viaListener((s) => {
      const { fd, pending } = takeSocket(s);
      c.forward(fd, { host: '127.0.0.1', port }, { ip: '127.0.0.1', port: holder }, {}, pending);
    });
    caller2.write('hello');
    const until = Date.now() + 5000;
    while (!dst && Date.now() < until) await sleep(10);
    caller2.resetAndDestroy();
    while (!seen.includes('holder ECONNRESET') && Date.now() < until) await sleep(10);
    assert.ok(seen.includes('holder ECONNRESET'), `the destination saw: ${seen.join(', ') || 'nothing'}`);
  });

  it('forwards a caller\'s TCP connection byte-exact with half-close, and resets it when the peer refuses', async () => {
    const up = await echo();
    const refusing = new TunnelServer({
      credentials: new CredentialStore(await svid(nodeSpiffeId(TD, 'b'))), trustDomain: TD,
      authorize: (r) => (r.sourceId === 'bad' ? { allow: false, reason: 'no' } : { allow: true }),
    });
    const { port } = await refusing.listen(0, '127.0.0.1');
    closers.push(() => refusing.close(true));
    const c = await client();
    const results: Array<Promise<{ bytesOut: number; bytesIn: number; error?: string }>> = [];
    const open = (sourceId: string) => viaListener((s) => {
      const { fd, pending } = takeSocket(s);
      results.push(c.forward(fd, { host: '127.0.0.1', port }, { ip: '127.0.0.1', port: up }, { sourceId }, pending).done);
    });
    const caller = await open('good');
    const payload = randomBytes(3 << 20);
    const back = collect(caller);
    caller.end(payload);
    const got = await back;
    assert.equal(got.length, payload.length + `bye ${payload.length}`.length);
    assert.equal(digest(got.subarray(0, payload.length)), digest(payload));
    const r = await results[0]!;
    assert.equal(r.bytesOut, payload.length);
    assert.equal(r.bytesIn, got.length);
    assert.equal(r.error, undefined);
    const denied = await open('bad');
    assert.equal((await ending(denied, 'x'))?.code, 'ECONNRESET');
    assert.match((await results[1]!).error ?? '', /403/);
  });

  it('a handover\'s two-step GOAWAY refuses no stream: each is answered by the old endpoint or the new one', async () => {
    const up = await echo();
    const old = await tunnel({ reusePort: true });
    const c = await client();
    let ok = 0;
    const failed: string[] = [];
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const { stream, response } = c.open({ host: '127.0.0.1', port: old.port }, { ip: '127.0.0.1', port: up });
        const got = collect(stream).catch((e: Error) => Buffer.from(`error ${e.message}`));
        stream.end('ping');
        try {
          await response;
          const text = (await got).toString();
          if (text === 'pingbye 4') ok++;
          else failed.push(text);
        } catch (e) {
          failed.push((e as Error).message);
        }
      }
    })();
    await sleep(300);
    // The next generation listens beside the old one; the old one lets go and sends its peers away.
    await tunnel({ reusePort: true, port: old.port });
    old.srv.stopListening();
    old.srv.goaway(300);
    await sleep(1500);
    stop = true;
    await loop;
    assert.deepEqual(failed, []);
    assert.ok(ok > 10, `only ${ok} streams went through`);
    assert.ok(c.stats.sessionsOpened >= 2, 'the client moved to a new session');
    assert.equal(old.srv.openSessions, 0, 'the old endpoint has no session left');
  });

  it('a stream the peer refused unprocessed is opened again on a new session, with the bytes it had sent', async () => {
    // A peer node of another implementation (Node's http2) that refuses the first stream it sees.
    const m = await svid(nodeSpiffeId(TD, 'b'));
    let seenStreams = 0;
    const h2 = http2.createSecureServer({ key: m.keyPem, cert: m.certPem, ca: m.bundlePem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] });
    h2.on('stream', (stream) => {
      stream.on('error', () => undefined);
      if (seenStreams++ === 0) {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      stream.respond({ ':status': 200 });
      const parts: Buffer[] = [];
      stream.on('data', (d: Buffer) => parts.push(d));
      stream.on('end', () => stream.end(Buffer.concat([Buffer.from('got '), ...parts])));
    });
    h2.on('sessionError', () => undefined);
    const port = await listen(h2 as unknown as net.Server);
    const c = await client();
    const { stream, response } = c.open({ host: '127.0.0.1', port }, { ip: '127.0.0.1', port: 9 });
    const got = collect(stream);
    stream.write('first bytes ');
    await sleep(100);
    stream.end('and the rest');
    await response;
    assert.equal((await got).toString(), 'got first bytes and the rest');
    assert.equal(seenStreams, 2);
  });

  it('an endpoint stays up through garbage: random bytes, a handshake then random bytes, random HTTP/2 frames on an admitted session', async () => {
    const up = await echo();
    const { port } = await tunnel();
    const c = await client();
    const m = await svid(nodeSpiffeId(TD, 'a'));
    const seed = randomBytes(4).readUInt32LE();
    let x = seed || 1;
    const rnd = (n: number) => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x % n; };
    const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => rnd(256)));
    const frame = () => {
      // A frame header with a random type, flags, stream id and a payload of its stated length (or a lie about it).
      const len = rnd(64);
      const h = Buffer.alloc(9);
      h.writeUIntBE(rnd(3) === 0 ? rnd(1 << 24) : len, 0, 3);
      h[3] = rnd(12);
      h[4] = rnd(256);
      h.writeUInt32BE(rnd(8), 5);
      return Buffer.concat([h, junk(len)]);
    };
    const send = (sock: net.Socket | tls.TLSSocket, data: Buffer) => new Promise<void>((resolve) => {
      sock.on('error', () => resolve());
      sock.on('close', () => resolve());
      sock.write(data, () => setTimeout(() => { sock.destroy(); resolve(); }, 20));
    });
    for (let i = 0; i < 30; i++) {
      const kind = i % 3;
      if (kind === 0) {
        const s = net.connect({ host: '127.0.0.1', port });
        await send(s, junk(1 + rnd(4096)));
      } else {
        const s = tls.connect({ host: '127.0.0.1', port, key: m.keyPem, cert: m.certPem, ca: m.bundlePem, ALPNProtocols: ['h2'], rejectUnauthorized: false });
        const ok = await new Promise<boolean>((r) => { s.once('secureConnect', () => r(true)); s.once('error', () => r(false)); });
        if (!ok) continue;
        const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
        const body = kind === 1 ? junk(1 + rnd(2048)) : Buffer.concat([preface, ...Array.from({ length: 1 + rnd(8) }, frame)]);
        await send(s, body);
      }
    }
    // Still serving.
    const { stream, response } = c.open({ host: '127.0.0.1', port }, { ip: '127.0.0.1', port: up });
    const got = collect(stream);
    stream.end('alive');
    await response;
    assert.equal((await got).toString(), 'alivebye 5', `seed ${seed}`);
  });
});

describe('TCP pass-through in the relay', () => {
  it('carries bytes both ways with half-close, and counts them', async () => {
    const up = await echo();
    let done: Promise<{ bytesIn: number; bytesOut: number; connected: boolean; error?: string }> | undefined;
    const caller = await viaListener((s) => {
      const { fd, pending } = takeSocket(s);
      done = relayPipe(fd, '127.0.0.1', up, undefined, Buffer.concat([Buffer.from('head:'), pending]));
    });
    const payload = randomBytes(5 << 20);
    const back = collect(caller);
    caller.end(payload);
    const got = await back;
    const sent = 5 + payload.length;
    assert.equal(got.length, sent + `bye ${sent}`.length);
    assert.equal(digest(got.subarray(5, sent)), digest(payload));
    const r = await done!;
    assert.deepEqual({ ...r, durationMs: undefined }, { bytesIn: sent, bytesOut: got.length, connected: true, durationMs: undefined });
  });

  it('resets the caller when the backend refuses, and crosses a reset', async () => {
    // A port nobody listens on (just released).
    const refused = await new Promise<number>((r) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => r(p)); }); });
    let done: ReturnType<typeof relayPipe> | undefined;
    const caller = await viaListener((s) => {
      const { fd, pending } = takeSocket(s);
      done = relayPipe(fd, '127.0.0.1', refused, undefined, pending);
    });
    assert.equal((await ending(caller))?.code, 'ECONNRESET');
    const r = await done!;
    assert.deepEqual({ ...r, durationMs: 0 }, { bytesIn: 0, bytesOut: 0, durationMs: 0, connected: false, error: 'ECONNREFUSED' });
    // A backend that resets mid-connection: the caller is reset.
    const resetter = await listen(net.createServer((s) => { s.on('error', () => undefined); s.once('data', () => s.resetAndDestroy()); }));
    const caller2 = await viaListener((s) => {
      const { fd, pending } = takeSocket(s);
      void relayPipe(fd, '127.0.0.1', resetter, undefined, pending);
    });
    assert.equal((await ending(caller2, 'x'))?.code, 'ECONNRESET');
  });
});
