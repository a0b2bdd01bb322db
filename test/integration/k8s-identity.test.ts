/**
 * Identity in a Kubernetes cluster, against a real kube-apiserver and etcd
 * (the builds of scripts/k8s, cached by version) that this test starts on
 * 127.0.0.1 with ports, certificates and directories of its own: the
 * control plane (src/controlplane/cluster-identity.ts), with the chart's own
 * RBAC and a token of its ServiceAccount, checks agents' pod-bound tokens
 * with TokenReview. Nodes and pods are API objects (no kubelet runs: the
 * tokens are bound to them all the same).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createPrivateKey, createSign, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { KubeClient, type KubeObject } from '../../src/k8s/client.js';
import type { KubeAccess } from '../../src/k8s/access.js';
import { ClusterIdentity } from '../../src/controlplane/cluster-identity.js';
import { NodeCredential } from '../../src/agent/credential.js';
import { projectedTokenJoin } from '../../src/agent/kubernetes-identity.js';
import { ApiClient } from '../../src/api/client.js';
import { nodeTransport } from '../../src/api/node-transport.js';
import { agentApi } from '../../src/api/controlplane.js';
import { newKeyAndCsr, svidId } from '../../src/ca/index.js';
import { EbmeshError } from '../../src/errors.js';

const bins = Object.fromEntries(execFileSync('bash', ['-c', 'source scripts/k8s/versions.sh; echo "K8S=$K8S_BIN"; echo "ETCD=$ETCD_BIN"; echo "HELM=$HELM_BIN"'], { cwd: PACKAGE_ROOT, encoding: 'utf8' })
  .trim().split('\n').map((l) => l.split('=') as [string, string]));
const APISERVER = join(bins.K8S!, 'kube-apiserver');
const ETCD = join(bins.ETCD!, 'etcd');
const HELM = join(bins.HELM!, 'helm');
const missing = [APISERVER, ETCD, HELM].filter((f) => !existsSync(f));
const skip = missing.length ? `not built: ${missing.join(', ')} (bash scripts/k8s/build-kubernetes.sh; scripts/k8s/build-tools.sh)` : false;
if (skip) console.log(`# skipped: ${skip}`);

const NS = 'ebmesh-system';
const ISSUER = 'https://kubernetes.default.svc';
let dir = '';
const procs: ChildProcess[] = [];
let admin: KubeClient;
let identity: ClusterIdentity;
let cpPort = 0;
const uids = new Map<string, string>();
const logs = new Map<string, () => string>();
let stopping = false;

const freePort = () => new Promise<number>((resolve, reject) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => {
    const a = s.address();
    s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
  });
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

/** A CA, the API server's serving certificate, an admin client certificate and the service-account signing key. */
function pki(): void {
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
  openssl('req', '-x509', '-new', '-key', 'ca.key', '-days', '2', '-subj', '/CN=ebt-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-out', 'ca.crt');
  for (const [name, subj, ext] of [['apiserver', '/CN=kube-apiserver', 'extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1'], ['admin', '/O=system:masters/CN=ebt-admin', 'extendedKeyUsage=clientAuth']] as const) {
    writeFileSync(join(dir, `${name}.ext`), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n${ext}\n`);
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
    openssl('req', '-new', '-key', `${name}.key`, '-subj', subj, '-out', `${name}.csr`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
  }
  openssl('genrsa', '-out', 'sa.key', '2048');
  openssl('rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub');
}

function start(name: string, bin: string, args: string[]): void {
  const p = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  p.stderr!.on('data', (d: Buffer) => { log = (log + d.toString()).slice(-4000); });
  p.once('exit', (code) => { if (code && !stopping) console.log(`# ${name} exited ${code}: ${log}`); });
  logs.set(name, () => log);
  procs.push(p);
}

async function create<T extends KubeObject>(path: string, body: object): Promise<T> {
  return admin.request<T>('POST', path, body);
}

/** A token of NS/SA from the TokenRequest API, bound to pod POD when given. */
async function tokenFor(ns: string, sa: string, opts: { pod?: string; audiences?: string[] } = {}): Promise<string> {
  const r = await admin.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
    apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest',
    spec: {
      ...(opts.audiences ? { audiences: opts.audiences } : {}), expirationSeconds: 600,
      ...(opts.pod ? { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: opts.pod, uid: uids.get(`${ns}/${opts.pod}`) } } : {}),
    },
  });
  return r.status.token;
}

const b64url = (v: object | Buffer) => (Buffer.isBuffer(v) ? v : Buffer.from(JSON.stringify(v))).toString('base64url');

/** A token signed with the cluster's own service-account key, as the API server makes them, expiring at EXP (seconds). */
function signedToken(like: string, exp: number): string {
  const header = JSON.parse(Buffer.from(like.split('.')[0]!, 'base64url').toString()) as object;
  const claims = JSON.parse(Buffer.from(like.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
  const body = { ...claims, iat: exp - 1200, nbf: exp - 1200, exp, jti: randomUUID() };
  const input = `${b64url(header)}.${b64url(body)}`;
  const sig = createSign('RSA-SHA256').update(input).sign(createPrivateKey(readFileSync(join(dir, 'sa.key'))));
  return `${input}.${b64url(sig)}`;
}

/** An agent of NODE enrolling with TOKEN: a fresh credential dir each time. */
function agentOf(node: string, token: string, name = `${node}-${randomUUID().slice(0, 8)}`) {
  const tokenFile = join(dir, `${name}.token`);
  writeFileSync(tokenFile, token);
  const credDir = join(dir, 'agents', name);
  const cred = new NodeCredential(credDir, node, projectedTokenJoin({ client: admin, namespace: NS, bundleConfigMap: 'ebmesh-ca-bundle', tokenFile }));
  return { cred, credDir, enrol: () => cred.ensure({ host: '127.0.0.1', port: cpPort }, 'the control plane', 5000) };
}

const refusal = (code: string, re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof EbmeshError, String(e));
  assert.equal(e.code, code, e.message);
  assert.match(e.message, re);
  return true;
};

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), `ebt-k8s-identity-${process.pid}-`));
  pki();
  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  start('etcd', ETCD, ['--name', 'ebt', '--data-dir', join(dir, 'etcd'), '--listen-client-urls', `http://127.0.0.1:${etcdClient}`, '--advertise-client-urls', `http://127.0.0.1:${etcdClient}`,
    '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`, '--initial-cluster', `ebt=http://127.0.0.1:${etcdPeer}`, '--log-level', 'warn']);
  start('kube-apiserver', APISERVER, ['--bind-address', '127.0.0.1', '--advertise-address', '127.0.0.1', '--secure-port', String(apiPort), '--cert-dir', join(dir, 'apiserver-certs'),
    '--etcd-servers', `http://127.0.0.1:${etcdClient}`, '--service-cluster-ip-range', '10.199.0.0/24', '--endpoint-reconciler-type', 'none',
    '--client-ca-file', join(dir, 'ca.crt'), '--tls-cert-file', join(dir, 'apiserver.crt'), '--tls-private-key-file', join(dir, 'apiserver.key'),
    '--service-account-issuer', ISSUER, '--service-account-key-file', join(dir, 'sa.pub'), '--service-account-signing-key-file', join(dir, 'sa.key'),
    '--authorization-mode', 'Node,RBAC', '--profiling=false', '--v=0']);
  const access = (extra: Partial<KubeAccess>): KubeAccess => ({ server: `https://127.0.0.1:${apiPort}`, ca: readFileSync(join(dir, 'ca.crt')), description: 'the test API server', ...extra });
  admin = new KubeClient(access({ cert: readFileSync(join(dir, 'admin.crt')), key: readFileSync(join(dir, 'admin.key')) }));
  let ready = false;
  // Ready for us: the system namespaces and the bootstrap RBAC roles are made after the server starts.
  for (let i = 0; i < 480 && !ready; i++) {
    ready = await Promise.all(['/api/v1/namespaces/kube-system', '/apis/rbac.authorization.k8s.io/v1/clusterroles/system:auth-delegator'].map((p) => admin.request('GET', p)))
      .then(() => true, () => false);
    if (!ready) await sleep(250);
  }
  assert.ok(ready, `the API server became ready: ${logs.get('kube-apiserver')?.()}`);
  // The namespace, the accounts, two nodes, and pods bound to them.
  for (const ns of [NS, 'demo']) await create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  for (const [ns, sa] of [[NS, 'ebmesh-agent'], [NS, 'other'], ['demo', 'web']] as const) {
    await create(`/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa } });
  }
  for (const node of ['node-a', 'node-b']) await create('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: node } });
  for (const [ns, pod, sa, node] of [[NS, 'agent-a', 'ebmesh-agent', 'node-a'], [NS, 'other-a', 'other', 'node-a'], ['demo', 'web-a', 'web', 'node-a'], ['demo', 'web-b', 'web', 'node-b']] as const) {
    const p = await create(`/api/v1/namespaces/${ns}/pods`, {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: pod },
      spec: { nodeName: node, serviceAccountName: sa, automountServiceAccountToken: false, containers: [{ name: 'c', image: 'ebmesh.local/none:1' }] },
    });
    uids.set(`${ns}/${pod}`, p.metadata.uid!);
  }
  // The control plane's ServiceAccount and RBAC exactly as the chart renders them.
  const tpl = spawnSync(HELM, ['template', 'ebmesh', join(PACKAGE_ROOT, 'deploy/helm/ebmesh'), '-n', NS, '--set', 'image.tag=t', '--set', 'apiServer.host=127.0.0.1'], { encoding: 'utf8' });
  assert.equal(tpl.status, 0, tpl.stderr);
  const paths: Record<string, string> = {
    ServiceAccount: `/api/v1/namespaces/${NS}/serviceaccounts`, ClusterRole: '/apis/rbac.authorization.k8s.io/v1/clusterroles',
    ClusterRoleBinding: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', Role: `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`,
    RoleBinding: `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`,
  };
  for (const doc of parseAllDocuments(tpl.stdout)) {
    const o = doc.toJS() as KubeObject | null;
    if (o?.metadata?.name === 'ebmesh-controlplane' && o.kind && paths[o.kind]) await create(paths[o.kind]!, o);
  }
  const cpToken = await tokenFor(NS, 'ebmesh-controlplane');
  cpPort = await freePort();
  identity = new ClusterIdentity({
    client: new KubeClient(access({ token: () => cpToken })), namespace: NS, agentServiceAccount: 'ebmesh-agent',
    caSecret: 'ebmesh-ca', bundleConfigMap: 'ebmesh-ca-bundle', trustDomain: 'cluster.local', listen: `127.0.0.1:${cpPort}`,
    svidTtlSeconds: 600, nodeCertTtlSeconds: 3600,
  });
  await identity.start();
});

after(() => {
  stopping = true;
  identity?.stop();
  admin?.close();
  for (const p of procs.reverse()) p.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the control plane keeps its CA in its Secret and publishes the bundle, with the chart\'s RBAC', { skip }, async () => {
  const secret = await admin.request<{ data: Record<string, string> }>('GET', `/api/v1/namespaces/${NS}/secrets/ebmesh-ca`);
  assert.equal(Buffer.from(secret.data['ca.crt']!, 'base64').toString(), identity.ca.bundlePem);
  const cm = await admin.request<{ data: Record<string, string> }>('GET', `/api/v1/namespaces/${NS}/configmaps/ebmesh-ca-bundle`);
  assert.equal(cm.data['ca.crt'], identity.ca.bundlePem);
  assert.doesNotMatch(cm.data['ca.crt']!, /PRIVATE KEY/);
});

test('an agent enrols with its pod-bound token; its node is the one the token is bound to, not the one it names', { skip }, async () => {
  const token = await tokenFor(NS, 'ebmesh-agent', { pod: 'agent-a', audiences: ['ebmesh'] });
  const liar = agentOf('node-b', token);
  await assert.rejects(liar.enrol(), refusal('EBMESH_FORBIDDEN', /bound to pod agent-a on node node-a, not to node node-b/));
  assert.equal(existsSync(join(liar.credDir, 'cert.pem')), false, 'nothing issued');
  const a = agentOf('node-a', token, 'agent-a');
  await a.enrol();
  const id = svidId(readFileSync(join(a.credDir, 'cert.pem'), 'utf8'));
  assert.equal(id, 'spiffe://cluster.local/ns/ebmesh-system/sa/node-node-a');
});

test('a token of another account, for another audience, expired, or garbage enrols nobody, and says why', { skip }, async () => {
  const agentToken = await tokenFor(NS, 'ebmesh-agent', { pod: 'agent-a', audiences: ['ebmesh'] });
  const cases: Array<[string, string, string, RegExp]> = [
    ['another account', await tokenFor(NS, 'other', { pod: 'other-a', audiences: ['ebmesh'] }), 'EBMESH_UNAUTHENTICATED', /system:serviceaccount:ebmesh-system:other's, not the agents'/],
    ['another audience', await tokenFor(NS, 'ebmesh-agent', { pod: 'agent-a', audiences: ['other'] }), 'EBMESH_UNAUTHENTICATED', /did not authenticate the token/],
    ['no pod binding', await tokenFor(NS, 'ebmesh-agent', { audiences: ['ebmesh'] }), 'EBMESH_UNAUTHENTICATED', /not bound to a pod/],
    ['expired', signedToken(agentToken, Math.floor(Date.now() / 1000) - 3600), 'EBMESH_UNAUTHENTICATED', /did not authenticate the token/],
    ['garbage', 'not-a-token', 'EBMESH_UNAUTHENTICATED', /did not authenticate the token/],
  ];
  for (const [what, token, code, re] of cases) {
    const a = agentOf('node-a', token);
    await assert.rejects(a.enrol(), refusal(code, re), what);
    assert.equal(existsSync(join(a.credDir, 'cert.pem')), false, `${what}: nothing issued`);
  }
  // The same forgery with a future expiry is taken: the expired one was refused for its expiry.
  await agentOf('node-a', signedToken(agentToken, Math.floor(Date.now() / 1000) + 600)).enrol();
});

test('an enrolled agent gets SVIDs for its node and for the pods on its node only, for their service accounts', { skip }, async () => {
  const a = agentOf('node-a', await tokenFor(NS, 'ebmesh-agent', { pod: 'agent-a', audiences: ['ebmesh'] }));
  await a.enrol();
  const cp = new ApiClient(nodeTransport({ host: '127.0.0.1', port: cpPort, tls: () => a.cred.tls() }, {
    peer: 'the control plane', unreachable: () => new EbmeshError('EBMESH_CP_UNAVAILABLE', 'unreachable'),
  }), 10_000);
  const csr = async () => (await newKeyAndCsr('x')).csrPem;
  const web = await cp.call(agentApi.svid, { node: 'node-a', workload: 'demo/web-a', csrPem: await csr() });
  assert.equal(web.spiffeId, 'spiffe://cluster.local/ns/demo/sa/web');
  assert.equal(svidId(web.certPem), web.spiffeId);
  const own = await cp.call(agentApi.svid, { node: 'node-a', forNode: true, csrPem: await csr() });
  assert.equal(own.spiffeId, 'spiffe://cluster.local/ns/ebmesh-system/sa/node-node-a');
  await assert.rejects(cp.call(agentApi.svid, { node: 'node-a', workload: 'demo/web-b', csrPem: await csr() }), refusal('EBMESH_FORBIDDEN', /runs on node node-b, not on node-a/));
  await assert.rejects(cp.call(agentApi.svid, { node: 'node-a', workload: 'demo/nope', csrPem: await csr() }), refusal('EBMESH_NOT_FOUND', /demo\/nope not found/));
  await assert.rejects(cp.call(agentApi.svid, { node: 'node-a', workload: `${NS}/other-a`, csrPem: await csr() }), refusal('EBMESH_FORBIDDEN', /holds the nodes' identities/));
  // Another node's identity: its certificate names node-a.
  await assert.rejects(cp.call(agentApi.svid, { node: 'node-b', workload: 'demo/web-b', csrPem: await csr() }), refusal('EBMESH_FORBIDDEN', /may not act for node node-b/));
});
