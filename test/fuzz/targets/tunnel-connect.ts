/**
 * The tunnel endpoint's CONNECT handling (src/tunnel/server.ts) over a real
 * TLS 1.3 session with a node's certificate from a real mesh CA. Inputs:
 * the request's pseudo-headers and the two vouching headers, near-valid and
 * not (methods, authorities that are almost an IPv4:port, long or odd
 * source identities and addresses), and bytes sent on the stream.
 *
 * What must hold: every stream gets an answer within 3 s (or, malformed as
 * HTTP/2, nghttp2's PROTOCOL_ERROR), one of 200 (only
 * a CONNECT to a valid IPv4:port that policy admits and that accepts), 400
 * (a bad authority), 403 (policy, with its reason), 405 (not a CONNECT) or
 * 502 (unreachable, with the errno); a 200 carries the bytes both ways;
 * nothing throws in the process; the endpoint still serves afterwards.
 *
 * Safety: the endpoint (the native relay) dials what policy admits, and
 * policy here admits two loopback destinations only: the echo server and a
 * closed port (ECHO and CLOSED in an input); any other gets 403 before a
 * connection is made.
 */
import fc from 'fast-check';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { CertificateAuthority, createRoot, newKeyAndCsr } from '../../../src/ca/index.js';
import { CredentialStore, TunnelServer, nodeSpiffeId, type Destination } from '../../../src/tunnel/index.js';
import { parseAuthority } from '../../../src/tunnel/protocol.js';
import { within, type FuzzTarget } from '../fuzz.js';

const TD = 'fuzz.test';

interface Ctx {
  echo: net.Server; echoPort: number; closedPort: number;
  server: TunnelServer; port: number; tls: tls.SecureContext; session?: http2.ClientHttp2Session;
  thrown: unknown[]; onThrow: (e: unknown) => void; n: number;
}
interface Input { method: string; authority: string; sourceId?: string; sourceIp?: string; extra: Array<[string, string]>; payload: string }

async function listen(s: net.Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as net.AddressInfo).port;
}

/** A session of its own for each input: one input's connection error must not be blamed on the next. */
function session(ctx: Ctx): http2.ClientHttp2Session {
  ctx.session?.destroy();
  const s = http2.connect(`https://127.0.0.1:${ctx.port}`, {
    createConnection: () => tls.connect({ host: '127.0.0.1', port: ctx.port, secureContext: ctx.tls, ALPNProtocols: ['h2'], minVersion: 'TLSv1.3', rejectUnauthorized: false }),
  });
  s.on('error', () => undefined);
  ctx.session = s;
  return s;
}

function send(ctx: Ctx, i: Input): Promise<{ status: number; reason?: string; body: string } | undefined> {
  const headers: http2.OutgoingHttpHeaders = { ':method': i.method, ':authority': i.authority };
  if (i.sourceId !== undefined) headers['ebmesh-source-id'] = i.sourceId;
  if (i.sourceIp !== undefined) headers['ebmesh-source-ip'] = i.sourceIp;
  for (const [k, v] of i.extra) headers[k] = v;
  let stream: http2.ClientHttp2Stream;
  try {
    stream = session(ctx).request(headers, { endStream: false });
  } catch {
    return Promise.resolve(undefined); // Node's client will not send it: not the endpoint's input
  }
  return new Promise((resolve, reject) => {
    let status = 0;
    let reason: string | undefined;
    let body = '';
    stream.on('error', () => undefined);
    stream.on('response', (h) => {
      status = Number(h[':status']);
      reason = h['ebmesh-reason'] as string | undefined;
      if (status === 200) stream.end(i.payload);
    });
    stream.on('data', (d: Buffer) => { body += d.toString('latin1'); });
    stream.on('close', () => {
      if (status) resolve({ status, ...(reason ? { reason } : {}), body });
      // nghttp2 under the endpoint refuses a malformed HTTP/2 request (bad characters, pseudo-headers CONNECT forbids) before our code sees it.
      else if (stream.rstCode === http2.constants.NGHTTP2_PROTOCOL_ERROR) resolve({ status: 0, body: '' });
      else reject(new Error(`the stream closed without an answer (code ${stream.rstCode})`));
    });
  });
}

const octet = fc.oneof(fc.nat({ max: 255 }).map(String), fc.constantFrom('256', '999', '01', '-1', '', 'a'));
const authority = fc.oneof(
  fc.tuple(octet, octet, octet, octet, fc.oneof(fc.nat({ max: 70000 }).map(String), fc.constantFrom('', '0', '65535', '065', 'x'))).map(([a, b, c, d, p]) => `${a}.${b}.${c}.${d}:${p}`),
  fc.constantFrom('127.0.0.1', '[::1]:80', 'localhost:80', '1.2.3.4:80:80', '1.2.3:80', ' 127.0.0.1:80', '', 'a'.repeat(300)),
  fc.string({ unit: 'binary-ascii', maxLength: 30 }),
);

export const tunnelConnectTarget: FuzzTarget<Input, Ctx> = {
  name: 'tunnel-connect',
  what: 'the tunnel endpoint\'s CONNECT handling over TLS: 200/400/403/405/502 within 3 s with the reason, bytes both ways on 200, nothing thrown, still serving',
  async setup() {
    const ca = await CertificateAuthority.load(await createRoot(TD));
    const material = async (id: string) => {
      const { keyPem, csrPem } = await newKeyAndCsr(id);
      return { keyPem, certPem: (await ca.issue(csrPem, id, 3600)).certPem, bundlePem: ca.bundlePem };
    };
    const echo = net.createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => undefined); s.pipe(s); });
    const echoPort = await listen(echo);
    const closed = net.createServer();
    const closedPort = await listen(closed);
    await new Promise<void>((r) => closed.close(() => r()));
    const loopbackOnly = (d: Destination) => d.ip === '127.0.0.1' && (d.port === echoPort || d.port === closedPort);
    const server = new TunnelServer({
      credentials: new CredentialStore(await material(nodeSpiffeId(TD, 'b'))),
      trustDomain: TD,
      authorize: (r) => {
        if (!loopbackOnly(r.dst)) return { allow: false, reason: `fuzz: only the echo server and the closed port, not ${r.dst.ip}:${r.dst.port}` };
        return r.sourceId?.endsWith('/sa/bad') ? { allow: false, reason: `policy: ${r.sourceId} may not reach ${r.dst.ip}:${r.dst.port}` } : { allow: true };
      },
    });
    server.on('serverError', () => undefined);
    const { port } = await server.listen(0, '127.0.0.1');
    const client = await material(nodeSpiffeId(TD, 'a'));
    const clientTls = tls.createSecureContext({ key: client.keyPem, cert: client.certPem, ca: client.bundlePem });
    const ctx: Ctx = { echo, echoPort, closedPort, server, port, tls: clientTls, thrown: [], n: 0, onThrow: (e) => ctx.thrown.push(e) };
    process.on('uncaughtException', ctx.onThrow);
    process.on('unhandledRejection', ctx.onThrow);
    return ctx;
  },
  async teardown(ctx) {
    process.off('uncaughtException', ctx.onThrow);
    process.off('unhandledRejection', ctx.onThrow);
    ctx.session?.destroy();
    await ctx.server.close(true);
    await new Promise<void>((r) => ctx.echo.close(() => r()));
  },
  seed: (text) => JSON.parse(text) as Input,
  inputs(seeds) {
    const made = fc.record({
      method: fc.oneof(fc.constantFrom('CONNECT', 'CONNECT', 'GET', 'POST', 'connect', 'OPTIONS'), fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 8 })),
      authority: fc.oneof(authority, fc.constant('ECHO'), fc.constant('CLOSED')),
      sourceId: fc.option(fc.oneof(fc.constantFrom('spiffe://fuzz.test/ns/demo/sa/client', 'spiffe://fuzz.test/ns/demo/sa/bad', 'spiffe://other/ns/x/sa/y', '', 'x'.repeat(5000)), fc.string({ maxLength: 60 })), { nil: undefined }),
      sourceIp: fc.option(fc.oneof(fc.constantFrom('10.244.0.9', '::1', '999.1.1.1', ''), fc.string({ maxLength: 20 })), { nil: undefined }),
      extra: fc.array(fc.tuple(fc.constantFrom(':path', ':scheme', ':protocol', 'ebmesh-source-id', 'content-length', 'te', 'x-a', 'host'), fc.string({ maxLength: 20 })), { maxLength: 2 }),
      payload: fc.string({ unit: 'binary', maxLength: 200 }),
    });
    return seeds.length ? fc.oneof({ arbitrary: made, weight: 9 }, { arbitrary: fc.constantFrom(...seeds), weight: 1 }) : made;
  },
  async check(ctx, input) {
    const named: Record<string, string> = { ECHO: `127.0.0.1:${ctx.echoPort}`, CLOSED: `127.0.0.1:${ctx.closedPort}` };
    const i = { ...input, authority: named[input.authority] ?? input.authority };
    const r = await within(send(ctx, i), 3000, `an answer to ${i.method} ${i.authority}`);
    if (ctx.thrown.length) throw new Error(`thrown inside the endpoint: ${String((ctx.thrown[0] as Error)?.stack ?? ctx.thrown[0])}`);
    if (!r || r.status === 0) return;
    const valid = i.method === 'CONNECT' && parseAuthority(i.authority) !== undefined;
    // An extra header of the same name replaces the vouched identity (send() writes extras last): judge by what went out.
    const sentSourceId = i.extra.reduce<string | undefined>((id, [k, v]) => (k === 'ebmesh-source-id' ? v : id), i.sourceId);
    const allowed: Record<number, boolean> = { 200: valid && !sentSourceId?.endsWith('/sa/bad'), 400: i.method === 'CONNECT' && !valid, 403: valid, 405: i.method !== 'CONNECT', 502: valid };
    if (!allowed[r.status]) throw new Error(`${i.method} ${JSON.stringify(i.authority.slice(0, 60))} answered ${r.status}`);
    if ((r.status === 403 || r.status === 502) && !r.reason) throw new Error(`${r.status} without ebmesh-reason`);
    if (r.status === 200 && i.authority === `127.0.0.1:${ctx.echoPort}` && r.body !== Buffer.from(i.payload, 'latin1').toString('latin1') && r.body !== Buffer.from(i.payload).toString('latin1')) {
      throw new Error(`the echo came back otherwise: ${JSON.stringify(r.body.slice(0, 60))}`);
    }
    if (++ctx.n % 25 === 0) {
      const ok = await within(send(ctx, { method: 'CONNECT', authority: `127.0.0.1:${ctx.echoPort}`, extra: [], payload: 'alive' }), 3000, 'a plain CONNECT after the fuzzed ones');
      if (ok?.status !== 200 || ok.body !== 'alive') throw new Error(`a plain CONNECT got ${JSON.stringify(ok)}`);
    }
  },
};
