import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { requireTools } from '../helpers/tools.js';
import { dial, h2Request, h2Session, request, startBackend, startH2Backend, startProxy, svc, to, type Backend, type Started } from './harness.js';

const run = promisify(execFile);


describe('HTTP/2, gRPC, h2c upgrade, WebSocket, TCP pass-through', () => {
  let h1: Backend, h2: Backend, grpc: Backend, p: Started;
  let full: () => Parameters<typeof startProxy>[0];
  let tcpEcho: net.Server, greeter: net.Server, wsServer: net.Server;
  const port = (s: net.Server): number => (s.address() as net.AddressInfo).port;
  before(async () => {
    h1 = await startBackend('h1');
    h2 = await startH2Backend('h2');
    grpc = await startH2Backend('grpc', (stream, headers, body) => {
      // a unary gRPC answer: length-prefixed message, grpc-status in trailers
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'ok', 'x-echo-path': String(headers[':path']) }));
      stream.end(body);
    });
    tcpEcho = net.createServer((s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    greeter = net.createServer((s) => {
      s.on('error', () => {});
      s.end('220 hello from a server-first protocol\r\n');
    });
    // A minimal WebSocket-ish server: 101 then echo raw bytes.
    wsServer = net.createServer((s) => {
      s.on('error', () => {});
      let head = '';
      const onData = (d: Buffer): void => {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        s.off('data', onData);
        s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n');
        const rest = head.slice(end + 4);
        if (rest) s.write(Buffer.from(rest, 'latin1'));
        s.pipe(s);
      };
      s.on('data', onData);
    });
    for (const s of [tcpEcho, greeter, wsServer]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    full = () => ({
      services: [
        svc('h1', '10.96.5.1', 80, [h1]),
        svc('h2', '10.96.5.2', 80, [h2], { protocol: 'http2' }),
        svc('grpc', '10.96.5.3', 50051, [grpc]),
        { name: 'echo', namespace: 'default', vip: '10.96.5.4', port: 7, endpoints: [{ ip: '127.0.0.1', port: port(tcpEcho) }] },
        { name: 'greeter', namespace: 'default', vip: '10.96.5.5', port: 25, endpoints: [{ ip: '127.0.0.1', port: port(greeter) }] },
        { name: 'ws', namespace: 'default', vip: '10.96.5.6', port: 80, endpoints: [{ ip: '127.0.0.1', port: port(wsServer) }] },
      ],
      limits: { sniffTimeoutMs: 100 },
    });
    p = await startProxy(full());
  });
  after(async () => {
    await p.proxy.close();
    await Promise.all([h1.close(), h2.close(), grpc.close()]);
    for (const s of [tcpEcho, greeter, wsServer]) s.close();
  });

  it('HTTP/2 prior knowledge in, HTTP/2 out (many streams on one session)', async () => {
    const s = h2Session(p, to('10.96.5.2', 80));
    const replies = await Promise.all(Array.from({ length: 5 }, (_, i) => h2Request(s, { ':path': `/s/${i}` })));
    s.close();
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200, 200]);
    assert.equal(JSON.parse(replies[3]!.body).path, '/s/3');
    assert.equal(replies[0]!.headers['x-backend'], 'h2');
  });

  it('HTTP/2 in, HTTP/1.1 out when the service says http1 (auto keeps h1 for h1 clients)', async () => {
    const s = h2Session(p, to('10.96.5.1', 80));
    await assert.doesNotReject(async () => {
      // service h1 is "auto": an h2 client means h2 upstream, which the h1 backend cannot speak
      p.proxy.update({
        services: [svc('h1', '10.96.5.1', 80, [h1], { protocol: 'http1' })],
      });
      const r = await h2Request(s, { ':path': '/via-h2', ':method': 'POST' }, 'body!');
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body).body, 'body!');
    });
    s.close();
    p.proxy.update(full());
  });

  it('gRPC over h2: body and trailers (grpc-status) pass through', async () => {
    const s = h2Session(p, to('10.96.5.3', 50051));
    const msg = Buffer.concat([Buffer.from([0, 0, 0, 0, 3]), Buffer.from('abc')]);
    const r = await h2Request(s, { ':method': 'POST', ':path': '/pkg.Svc/Method', 'content-type': 'application/grpc', te: 'trailers' }, msg);
    s.close();
    assert.equal(r.status, 200);
    assert.equal(r.trailers['grpc-status'], '0');
    assert.equal(r.trailers['x-echo-path'], '/pkg.Svc/Method');
    assert.equal(r.body, msg.toString());
  });

  it('gRPC errors made by the proxy are trailers-only with a grpc-status', async () => {
    p.proxy.update({
      ...full(),
      grpcRoutes: [
        {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'GRPCRoute',
          metadata: { name: 'g', namespace: 'default' },
          spec: { parentRefs: [{ kind: 'Service', name: 'grpc' }], rules: [{ matches: [{ method: { service: 'pkg.Svc', method: 'Method' } }], backendRefs: [{ name: 'grpc', port: 50051 }] }] },
        } as never,
      ],
    });
    const s = h2Session(p, to('10.96.5.3', 50051));
    const ok = await h2Request(s, { ':method': 'POST', ':path': '/pkg.Svc/Method', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.from([0, 0, 0, 0, 0]));
    assert.equal(ok.trailers['grpc-status'], '0');
    const miss = await h2Request(s, { ':method': 'POST', ':path': '/pkg.Svc/Other', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.from([0, 0, 0, 0, 0]));
    s.close();
    assert.equal(miss.status, 200);
    assert.equal(miss.headers['grpc-status'], '12', 'no route -> UNIMPLEMENTED');
    p.proxy.update(full());
  });

  it('h2c Upgrade from HTTP/1.1 (curl --http2 and nghttp -u)', async () => {
    p.steer.fallback = to('10.96.5.2', 80);
    try {
      requireTools('curl', 'nghttp');
      const { stdout } = await run('curl', ['-sS', '--http2', '-o', '-', '-w', '\\n%{http_version} %{http_code}', '-d', 'upgraded-body', `http://127.0.0.1:${p.port}/up`], { timeout: 10_000 });
      const lines = stdout.trim().split('\n');
      const tail = lines.pop();
      const json = lines.join('\n');
      assert.equal(tail, '2 200', 'curl saw HTTP/2 after the upgrade');
      assert.equal(JSON.parse(json).path, '/up');
      assert.equal(JSON.parse(json).body, 'upgraded-body');
      const n = await run('nghttp', ['-u', '-v', `http://127.0.0.1:${p.port}/nghttp`], { timeout: 10_000 });
      assert.match(n.stdout, /HTTP Upgrade success/);
      assert.match(n.stdout, /"path":"\/nghttp"/);
    } finally {
      p.steer.fallback = undefined;
    }
  });

  it('h2load: 200 requests over 4 h2 connections all succeed', async () => {
    requireTools('h2load');
    p.steer.fallback = to('10.96.5.2', 80);
    try {
      const { stdout } = await run('h2load', ['-n', '200', '-c', '4', '-m', '8', `http://127.0.0.1:${p.port}/load`], { timeout: 30_000 });
      assert.match(stdout, /200 succeeded, 0 failed, 0 errored/);
    } finally {
      p.steer.fallback = undefined;
    }
  });

  it('WebSocket: routed Upgrade, then bytes pass through both ways', async () => {
    const s = dial(p, to('10.96.5.6', 80));
    const got = await new Promise<string>((resolve, reject) => {
      let text = '';
      s.on('connect', () => s.write('GET /chat HTTP/1.1\r\nHost: ws\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'));
      s.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (text.includes('\r\n\r\n') && !text.includes('frame-1')) s.write(Buffer.from([0x81, 0x07, ...Buffer.from('frame-1')]));
        if (text.includes('frame-1')) {
          s.destroy();
          resolve(text);
        }
      });
      s.on('error', reject);
      setTimeout(() => reject(new Error('websocket test timed out')), 3000);
    });
    assert.match(got, /^HTTP\/1\.1 101 /);
    assert.ok(got.includes('frame-1'));
  });

  it('TCP pass-through for non-HTTP bytes, and for server-first protocols after the sniff timeout', async () => {
    const echo = await new Promise<Buffer>((resolve, reject) => {
      const s = dial(p, to('10.96.5.4', 7));
      const payload = Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x01, 0x02]); // binary, TLS-like
      s.on('connect', () => s.write(payload));
      s.on('data', (d: Buffer) => {
        s.destroy();
        resolve(d);
      });
      s.on('error', reject);
    });
    assert.deepEqual([...echo], [0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x01, 0x02]);
    const greeting = await new Promise<string>((resolve, reject) => {
      const s = dial(p, to('10.96.5.5', 25));
      let t = '';
      s.on('data', (d: Buffer) => (t += d));
      s.on('close', () => resolve(t));
      s.on('error', reject);
    });
    assert.equal(greeting, '220 hello from a server-first protocol\r\n');
    assert.ok(p.proxy.stats().tcpPassthrough >= 2);
  });

  it('HTTP/1.1 client through curl with chunked upload', async () => {
    requireTools('curl');
    p.steer.fallback = to('10.96.5.1', 80);
    try {
      const { stdout } = await run('curl', ['-sS', '-H', 'Transfer-Encoding: chunked', '--data-binary', 'chunky', `http://127.0.0.1:${p.port}/c`], { timeout: 10_000 });
      assert.equal(JSON.parse(stdout).body, 'chunky');
    } finally {
      p.steer.fallback = undefined;
    }
  });

  it('closes connections the kernel did not steer', async () => {
    const closed = await new Promise<boolean>((resolve) => {
      const s = net.connect(p.port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.on('data', () => resolve(false));
      s.on('close', () => resolve(true));
      s.on('error', () => resolve(true));
    });
    assert.ok(closed);
  });
  void request;
});
