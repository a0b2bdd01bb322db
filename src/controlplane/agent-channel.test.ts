/**
 * The channel between agents and their control plane, over real TCP and
 * TLS: a control plane (on the embedded store, in a temporary directory)
 * with its agents' listener on 127.0.0.1, and the agent's side
 * (agent/credential.ts) against it. Refused: a caller without a certificate
 * of the mesh CA, with another node's, a spent or wrong join token; and, on
 * the agent's side, a peer that is not the control plane.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpsServer, request as httpsRequest, type Server } from 'node:https';
import { request as httpRequest } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { EmbeddedStore } from '../store/index.js';
import { freePort } from '../store/etcd-server.js';
import { instancePaths } from '../paths.js';
import { ControlPlane } from './server.js';
import { joinFiles, NodeCredential } from '../agent/credential.js';
import { ApiClient } from '../api/client.js';
import { nodeTransport } from '../api/node-transport.js';
import { agentApi } from '../api/controlplane.js';
import { EbmeshError } from '../errors.js';
import { CertificateAuthority, createRoot, newKeyAndCsr } from '../ca/index.js';
import { nodeSpiffeId } from '../tunnel/ids.js';

const dir = mkdtempSync(join(tmpdir(), 'ebmesh-cp-channel-'));
const paths = { ...instancePaths('ebt-cp-channel'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), apiSocket: join(dir, 'run', 'api.sock'), storeFile: join(dir, 'state', 'store.json') };
let cp: ControlPlane;
let port = 0;
const address = () => ({ host: '127.0.0.1', port });
const servers: Server[] = [];

before(async () => {
  port = await freePort();
  cp = new ControlPlane({
    paths, store: new EmbeddedStore(paths.storeFile), storeDescription: 'test', svidTtlSeconds: 3600,
    agentListen: `127.0.0.1:${port}`, shutdown: () => undefined,
  });
  await cp.start();
});

after(async () => {
  for (const s of servers) s.close();
  await cp.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A node registered, and its join material written where its agent reads it. */
async function join_(node: string): Promise<{ tokenFile: string; caFile: string; token: string }> {
  const r = await cp.addNode(node);
  const tokenFile = join(dir, `${node}.token`);
  const caFile = join(dir, `${node}.ca.pem`);
  writeFileSync(tokenFile, r.token);
  writeFileSync(caFile, r.bundlePem);
  return { tokenFile, caFile, token: r.token };
}

/** The agent's client: mutual TLS with the credential, as agent/main.ts makes it. */
const clientOf = (cred: NodeCredential, to = address()) => new ApiClient(nodeTransport({ ...to, tls: () => cred.tls() }, {
  peer: 'the control plane', unreachable: (c) => new EbmeshError('EBMESH_CP_UNAVAILABLE', String(c)),
}), 10_000);

/** A raw HTTPS call: status and error code, whatever the TLS options. */
function raw(path: string, tls: Record<string, unknown>, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; code?: string }> {
  return new Promise((resolve) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, method: body === undefined ? 'GET' : 'POST', agent: false, checkServerIdentity: () => undefined, headers, ...tls }, (res) => {
      let t = '';
      res.on('data', (d) => (t += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(t) as { error?: { code?: string } }).error?.code }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: 0, code: e.code }));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

let credA: NodeCredential;
let joinA: Awaited<ReturnType<typeof join_>>;

test('an agent enrols once with its join token, over TLS pinning the CA it was given; the token is spent', async () => {
  joinA = await join_('node-a');
  await join_('node-b');
  credA = new NodeCredential(join(dir, 'cred-a'), 'node-a', joinFiles(joinA.tokenFile, joinA.caFile));
  await credA.ensure(address(), 'the control plane', 5000);
  const cert = readFileSync(join(dir, 'cred-a', 'cert.pem'), 'utf8');
  assert.match(cert, /BEGIN CERTIFICATE/);
  assert.equal(existsSync(joinA.tokenFile), false, 'the spent token is removed');
  // The same token again: refused.
  const { csrPem } = await newKeyAndCsr('x');
  const again = await raw('/v1/nodes/node-a/enroll', { ca: readFileSync(joinA.caFile) }, { csrPem }, { authorization: `Bearer ${joinA.token}` });
  assert.deepEqual(again, { status: 401, code: 'EBMESH_UNAUTHENTICATED' });
});

test("a join token enrols only its node, and a wrong one nobody", async () => {
  const b = await join_('node-b');
  const { csrPem } = await newKeyAndCsr('x');
  const ca = { ca: readFileSync(b.caFile) };
  assert.deepEqual(await raw('/v1/nodes/node-a/enroll', ca, { csrPem }, { authorization: `Bearer ${b.token}` }), { status: 401, code: 'EBMESH_UNAUTHENTICATED' });
  assert.deepEqual(await raw('/v1/nodes/node-b/enroll', ca, { csrPem }, { authorization: 'Bearer nope' }), { status: 401, code: 'EBMESH_UNAUTHENTICATED' });
  assert.deepEqual(await raw('/v1/nodes/node-b/enroll', ca, { csrPem }), { status: 401, code: 'EBMESH_UNAUTHENTICATED' });
  // Still pending after the failures: its own node enrols with it.
  assert.equal((await raw('/v1/nodes/node-b/enroll', ca, { csrPem }, { authorization: `Bearer ${b.token}` })).status, 200);
});

test('with its node certificate an agent gets its own node\'s state and not another\'s', async () => {
  const c = clientOf(credA);
  const d = await c.call(agentApi.desired, { node: 'node-a', after: 0, wait: 0 });
  assert.ok('revision' in d);
  await assert.rejects(c.call(agentApi.desired, { node: 'node-b', after: 0, wait: 0 }), (e: EbmeshError) => e.code === 'EBMESH_FORBIDDEN');
  const { csrPem } = await newKeyAndCsr('x');
  await assert.rejects(c.call(agentApi.svid, { node: 'node-b', forNode: true, csrPem }), (e: EbmeshError) => e.code === 'EBMESH_FORBIDDEN');
  // Renewing its own certificate, with the current one.
  const renewed = await c.call(agentApi.credential, { node: 'node-a', csrPem });
  assert.equal(renewed.spiffeId, nodeSpiffeId('cluster.local', 'node-a'));
});

test('no client certificate, or one of another CA naming the same node, is refused with 401; plain HTTP gets nothing', async () => {
  const ca = readFileSync(joinA.caFile);
  for (const path of ['/v1/nodes/node-a/desired?after=0', '/v1/nodes/node-a/status']) {
    assert.deepEqual(await raw(path, { ca }, path.endsWith('status') ? { ops: [] } : undefined), { status: 401, code: 'EBMESH_UNAUTHENTICATED' }, path);
  }
  // A forger's CA issues "node-a": same ID, wrong signer.
  const forger = await CertificateAuthority.load(await createRoot('cluster.local'));
  const { keyPem, csrPem } = await newKeyAndCsr('x');
  const forged = await forger.issue(csrPem, nodeSpiffeId('cluster.local', 'node-a'), 600);
  assert.deepEqual(await raw('/v1/nodes/node-a/desired?after=0', { ca, cert: forged.certPem, key: keyPem }), { status: 401, code: 'EBMESH_UNAUTHENTICATED' });
  const plain = await new Promise<string>((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/nodes/node-a/desired?after=0', timeout: 5000 }, (res) => resolve(`HTTP ${res.statusCode}`));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
    req.end();
  });
  assert.match(plain, /^error /);
});

/** A TLS server on a free port presenting CERTPEM/KEYPEM, answering every request 200. */
async function impostor(certPem: string, keyPem: string): Promise<{ host: string; port: number }> {
  const s = createHttpsServer({ cert: certPem, key: keyPem }, (_req, res) => res.end('{"revision":1}'));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { host: '127.0.0.1', port: (s.address() as AddressInfo).port };
}

test('the agent refuses a peer that is not its control plane: another CA, or the right CA naming someone else', async () => {
  const { keyPem, csrPem } = await newKeyAndCsr('x');
  const stranger = await CertificateAuthority.load(await createRoot('cluster.local'));
  const fromStranger = await stranger.issue(csrPem, 'spiffe://cluster.local/ns/ebmesh-system/sa/controlplane', 600);
  const aWorkload = await cp.ca.issue(csrPem, 'spiffe://cluster.local/ns/demo/sa/web', 600);
  for (const [what, cert] of [['another CA', fromStranger], ['a workload of the mesh', aWorkload]] as const) {
    const at = await impostor(cert.certPem, keyPem);
    await assert.rejects(clientOf(credA, at).call(agentApi.desired, { node: 'node-a', after: 0, wait: 0 }),
      (e: EbmeshError) => e.code === 'EBMESH_TLS', what);
  }
});

test('an agent without a usable certificate and without join material says what it needs', async () => {
  const lost = new NodeCredential(join(dir, 'cred-lost'), 'node-a', joinFiles(join(dir, 'none.token'), joinA.caFile));
  await assert.rejects(lost.ensure(address(), 'the control plane', 1000), (e: EbmeshError) => e.code === 'EBMESH_UNAUTHENTICATED' && /join material is missing/.test(e.message));
});
