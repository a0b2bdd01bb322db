/**
 * Issue 7, transparent cross-node mTLS: on a three-node lab, an ordinary
 * curl on node-2 to a Service whose backends are on node-1 and node-3 is
 * steered at connect() into node-2's proxy and from there through the mTLS
 * tunnel; the inter-node link carries none of the request in plaintext, the
 * receiving endpoints record the caller's identity, and a strict namespace
 * still refuses a plaintext client from outside the mesh. An L7-routed
 * Service (HTTPRoute) with backends on other nodes: the proxy's own upstream
 * connections go through the tunnel too, unless the backend's namespace says
 * `ebmesh.io/mtls: disable`. The receiving endpoint judges the
 * destination's NetworkPolicy ingress for the caller before delivering.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { TestCluster, NAME_SERVER, nameServerWorkload } from '../helpers/cluster.js';
import { nodeApi } from '../../src/api/node.js';

const mesh = new TestCluster('mw');
// The L7 backends close after each answer, so every request is one tunnel stream that ends (and becomes a flow) at once.
const CLOSING_SERVER = NAME_SERVER.replace("self.end_headers()", "self.send_header('connection', 'close'); self.close_connection = True; self.end_headers()");
const server = (name: string, node: string, namespace = 'sec', app = 'web', code = NAME_SERVER) =>
  nameServerWorkload({ name, namespace, node, labels: `app: ${app}, pin: ${name}`, serviceAccount: 'web', code });
const yaml = `apiVersion: v1
kind: Namespace
metadata: {name: sec, annotations: {ebmesh.io/mtls: strict}}
---
${server('web-1', 'node-1')}${server('web-3', 'node-3')}apiVersion: v1
kind: Service
metadata: {name: web, namespace: sec}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: sec, labels: {app: client}}
spec: {node: node-2, serviceAccount: client, command: [sleep, infinity]}
---
apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: idle, namespace: sec, labels: {app: idle}}
spec: {node: node-2, serviceAccount: idle, command: [sleep, infinity]}
---
${server('api-1', 'node-1', 'sec', 'api', CLOSING_SERVER)}${server('api-3', 'node-3', 'sec', 'api', CLOSING_SERVER)}${l7Service('sec', 'api', 'api')}${l7Service('sec', 'api-one', 'api', 'api-1')}apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: sec}
spec:
  parentRefs: [{kind: Service, name: api}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /one}}]
      filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-route, value: one}]}}]
      backendRefs: [{name: api-one, port: 80}]
    - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-route, value: any}]}}]
      backendRefs: [{name: api, port: 80}]
---
apiVersion: v1
kind: Namespace
metadata: {name: open, annotations: {ebmesh.io/mtls: disable}}
---
${server('vault-1', 'node-1', 'sec', 'vault')}apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: vault-from-client, namespace: sec}
spec:
  podSelector: {matchLabels: {app: vault}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 8080}]}]
---
${server('open-1', 'node-1', 'open', 'open', CLOSING_SERVER)}${l7Service('open', 'open', 'open')}apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: open, namespace: open}
spec:
  parentRefs: [{kind: Service, name: open}]
  rules: [{filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-route, value: open}]}}], backendRefs: [{name: open, port: 80}]}]
`;

function l7Service(ns: string, name: string, app: string, pin?: string): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  selector: {app: ${app}${pin ? `, pin: ${pin}` : ''}}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
`;
}

const pcap = join(tmpdir(), `ebmesh-mtlswire-${process.pid}.pcap`);
before(() => {
  mesh.ok('up', '--nodes', '3', '-f', mesh.meshConfigFile(), '-f', mesh.file('mw.yaml', yaml), '--timeout', '90');
});
after(() => { mesh.down(); rmSync(pcap, { force: true }); rmSync(`${pcap}.l7`, { force: true }); });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tunnelFlows = async (node: string) => (await mesh.nodeApi(node, nodeApi.tunnel, {})).recent;

test('curl on node-2 to a VIP with backends on node-1 and node-3 goes through the tunnel, transparently, with no plaintext on the link', async () => {
  await mesh.waitTunnels();
  const marker = `ebmesh-wire-${process.pid}-${Date.now()}`;
  const names = new Set<string>();
  await mesh.captureFabric('n1', pcap, async () => {
    for (let i = 0; i < 20; i++) {
      const r = mesh.sh('sec/client', `curl -s --max-time 5 -w ' %{remote_ip}' -H 'X-Marker: ${marker}' http://web.sec/`);
      assert.equal(r.code, 0, `request ${i}: ${r.stderr}`);
      const [name, peer] = r.stdout.trim().split(/\s+/);
      names.add(name!);
      // getpeername() still shows the VIP, not the proxy.
      assert.ok(peer!.startsWith(mesh.serviceCIDR.split('.').slice(0, 3).join('.') + '.'), r.stdout);
    }
  });
  assert.deepEqual([...names].sort(), ['web-1', 'web-3']);
  assert.ok(existsSync(pcap));
  const cap = readFileSync(pcap);
  assert.ok(cap.length > 5_000, `capture has ${cap.length} bytes`);
  assert.equal(cap.includes(Buffer.from(marker)), false, 'plaintext on the inter-node link');
  // The receiving endpoints saw the caller's workload identity from node-2's SVID.
  const flows = [...await tunnelFlows('node-1'), ...await tunnelFlows('node-3')];
  const s = JSON.stringify(flows);
  assert.match(s, /spiffe:\/\/cluster\.local\/ns\/sec\/sa\/client/);
  assert.match(s, /node-node-2/);
});

interface ObservedFlow { type: string; observer: string; mtls?: boolean; peerIdentity?: string; sourceIdentity?: string; source: { workload?: string }; destination: { workload?: string; port: number }; service?: string }
const observed = (node: string, ...args: string[]) =>
  mesh.ok('observe', '--node', node, '--last', '500', ...args).trim().split('\n').filter(Boolean);

test('observe shows both ends of a tunnelled flow as mTLS with the peer identity, in the table and in -o json', async () => {
  await mesh.waitTunnels();
  const r = mesh.sh('sec/client', 'for i in 1 2 3 4 5 6; do curl -s --max-time 5 http://web.sec/ >/dev/null || exit 1; done');
  assert.equal(r.code, 0, r.stderr);
  await sleep(800); // the proxy reports flows every 250 ms
  const isMtls = (f: ObservedFlow) => f.type === 'close' && f.mtls === true;
  // The sender (node-2): its proxy's streams into the tunnel, peer = the receiving node's SVID.
  const sent = observed('node-2', '-o', 'json').map((l) => JSON.parse(l) as ObservedFlow).filter(isMtls);
  assert.ok(sent.length >= 6, `node-2 mTLS flows: ${sent.length}`);
  for (const f of sent) {
    assert.equal(f.observer, 'client');
    assert.match(f.peerIdentity ?? '', /^spiffe:\/\/cluster\.local\/ns\/ebmesh-system\/sa\/node-node-[13]$/);
    assert.equal(f.sourceIdentity, 'spiffe://cluster.local/ns/sec/sa/client');
    assert.match(f.destination.workload ?? '', /^web-[13]$/);
    assert.equal(f.service, 'sec/web');
  }
  // A receiver (node-1 or node-3): the endpoint's streams, peer = node-2's SVID, named like kernel flows.
  const got = ['node-1', 'node-3'].flatMap((n) => observed(n, '-o', 'json').map((l) => JSON.parse(l) as ObservedFlow).filter(isMtls));
  assert.ok(got.some((f) => f.observer === 'server' && f.peerIdentity === 'spiffe://cluster.local/ns/ebmesh-system/sa/node-node-2'
    && f.sourceIdentity === 'spiffe://cluster.local/ns/sec/sa/client' && f.source.workload === 'client' && f.destination.port === 8080), JSON.stringify(got.slice(-3)));
  // The table says it too.
  assert.ok(observed('node-2').some((l) => / mtls=true peer=spiffe:\/\/cluster\.local\/ns\/ebmesh-system\/sa\/node-node-[13] src=spiffe:\/\/cluster\.local\/ns\/sec\/sa\/client /.test(l)));
  // And a lab without --node says which nodes there are.
  const bare = mesh.cli('observe');
  assert.notEqual(bare.code, 0);
  assert.match(bare.stderr, /--node node-1\|node-2\|node-3/);
});

test('strict: a plaintext client outside the mesh is refused, mesh clients on other nodes get through the tunnel', async () => {
  const st = await mesh.waitTunnels();
  const ip = mesh.ipOf(st, 'sec', 'web-1');
  // node-2's own network namespace is outside the mesh: its connection is plain TCP to node-1.
  await mesh.assertStrictRefusesPlaintext(st, 'node-2', 'node-1', ip);
  const viaMesh = mesh.sh('sec/client', `curl -s --max-time 5 http://${ip}:8080/`);
  assert.equal(viaMesh.code, 0, viaMesh.stderr);
  assert.equal(viaMesh.stdout.trim(), 'web-1');
});

const proxyTunnel = async (node: string) =>
  (await mesh.nodeApi(node, nodeApi.status, {})).proxy?.stats?.tunnelSent;

test('L7: an HTTPRoute on a Service with backends on other nodes is applied by node-2\'s proxy, which reaches them through the tunnel (no plaintext on the link); a disable namespace stays plaintext', async () => {
  await mesh.waitTunnels();
  const marker = `ebmesh-l7-${process.pid}-${Date.now()}`;
  const openMarker = `ebmesh-l7open-${process.pid}-${Date.now()}`;
  const get = (url: string, m: string) => {
    const r = mesh.sh('sec/client', `curl -si --max-time 5 -H 'X-Marker: ${m}' ${url}`);
    assert.equal(r.code, 0, `${url}: ${r.stderr}`);
    const [head, body] = r.stdout.split('\r\n\r\n');
    return { status: head!.split(' ')[1], route: /^x-route: (.*)$/im.exec(head!)?.[1]?.trim(), name: body!.trim() };
  };
  const pcapL7 = `${pcap}.l7`;
  const before = await proxyTunnel('node-2');
  let afterApi: typeof before;
  const names = new Set<string>();
  await mesh.captureFabric('n1', pcapL7, async () => {
    // The path match and the header modifier are the route's: only node-2's proxy could have applied them.
    for (let i = 0; i < 6; i++) assert.deepEqual(get(`http://api.sec/one/${marker}`, marker), { status: '200', route: 'one', name: 'api-1' });
    for (let i = 0; i < 8; i++) {
      const r = get(`http://api.sec/${marker}`, marker);
      assert.equal(r.route, 'any');
      names.add(r.name);
    }
    await sleep(600); // workers report their counters every 250 ms
    afterApi = await proxyTunnel('node-2');
    // Same proxy, same route kind, a namespace that opted out: plaintext, as it says.
    for (let i = 0; i < 3; i++) assert.deepEqual(get(`http://open.open/${openMarker}`, openMarker), { status: '200', route: 'open', name: 'open-1' });
  });
  try {
    assert.deepEqual([...names].sort(), ['api-1', 'api-3']);
    // Every request was its own upstream connection (the backends close), each one a tunnel stream; none for the disable namespace.
    assert.ok(before && afterApi, 'node-2 reports its tunnel counters');
    assert.ok(afterApi.upstreams - before.upstreams >= 14, `upstream tunnel streams: ${before.upstreams} -> ${afterApi.upstreams}`);
    await sleep(600);
    assert.equal((await proxyTunnel('node-2'))!.upstreams, afterApi.upstreams, 'the disable namespace went through the tunnel');
    const cap = readFileSync(pcapL7);
    assert.ok(cap.includes(Buffer.from(openMarker)), 'the capture sees plaintext where there is some (the disable namespace)');
    assert.equal(cap.includes(Buffer.from(marker)), false, 'L7 request in plaintext on the inter-node link');
  } finally {
    rmSync(pcapL7, { force: true });
  }
  // Both ends record the streams as mTLS with the caller's identity.
  await sleep(800);
  const isApi = (f: ObservedFlow) => f.type === 'close' && f.mtls === true && /^api-[13]$/.test(f.destination.workload ?? '');
  const sent = observed('node-2', '-o', 'json').map((l) => JSON.parse(l) as ObservedFlow).filter(isApi);
  assert.ok(sent.length >= 14, `node-2 mTLS flows to api: ${sent.length}`);
  for (const f of sent) {
    assert.equal(f.sourceIdentity, 'spiffe://cluster.local/ns/sec/sa/client');
    assert.match(f.peerIdentity ?? '', /^spiffe:\/\/cluster\.local\/ns\/ebmesh-system\/sa\/node-node-[13]$/);
  }
  const got = observed('node-1', '-o', 'json').map((l) => JSON.parse(l) as ObservedFlow).filter(isApi);
  assert.ok(got.some((f) => f.observer === 'server' && f.peerIdentity === 'spiffe://cluster.local/ns/ebmesh-system/sa/node-node-2' && f.sourceIdentity === 'spiffe://cluster.local/ns/sec/sa/client'), JSON.stringify(got.slice(-2)));
});

test('the receiving endpoint judges the destination\'s NetworkPolicy for the caller its peer may vouch for: a stream the policy denies, or a claim for another node\'s pod or under another identity, is refused there, named, and recorded as a drop', async () => {
  const st = await mesh.waitTunnels();
  const ip = (name: string) => st.workloads.find((w) => w.name === name)!.ip;
  // The ordinary path: the allowed client reaches vault-1 across nodes (both nodes judge, both allow).
  const ok = mesh.sh('sec/client', `curl -s --max-time 5 http://${ip('vault-1')}:8080/`);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), 'vault-1');
  // node-2's own SVID, streams crafted to claim a caller: the sending kernel is not asked, only node-1's endpoint judges.
  const craft = (sourceIp: string, sourceId: string) => {
    const r = mesh.tunnelClient('node-2', mesh.svidDir('node-2'), `${ip('vault-1')}:8080`, '0.3', 'x', { TUNNEL_SOURCE_ID: sourceId, TUNNEL_SOURCE_IP: sourceIp });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { ok: number; fail: number; errors: string[] };
  };
  const denies = async () => Number((await mesh.nodeApi('node-1', nodeApi.status, {})).proxy?.stats?.tunnel?.streamsDenied ?? 0);
  // The control: the same crafted streams for the caller the policy admits, as itself, are delivered.
  const allowed = craft(ip('client'), 'spiffe://cluster.local/ns/sec/sa/client');
  assert.ok(allowed.ok >= 1 && allowed.fail === 0, JSON.stringify(allowed));
  const before = await denies();
  // idle is a mesh workload of node-2 the policy does not admit: refused at node-1's endpoint, with the policy's name.
  const refused = craft(ip('idle'), 'spiffe://cluster.local/ns/sec/sa/idle');
  assert.equal(refused.ok, 0, JSON.stringify(refused));
  assert.match(refused.errors.join(' '), /403 \(NetworkPolicy sec\/vault-from-client denies ingress to sec\/vault-1/);
  // node-2 may speak only for its own pods, as what they are: a node-3 pod's address, or the admitted client
  // under another identity, is refused before any policy is asked.
  const stolen = craft(ip('web-3'), 'spiffe://cluster.local/ns/sec/sa/web');
  assert.equal(stolen.ok, 0, JSON.stringify(stolen));
  assert.match(stolen.errors.join(' '), new RegExp(`403 \\(node node-2 vouches for ${ip('web-3').replace(/\./g, '\\.')}, a pod address of node node-3`));
  const masked = craft(ip('client'), 'spiffe://cluster.local/ns/sec/sa/web');
  assert.equal(masked.ok, 0, JSON.stringify(masked));
  assert.match(masked.errors.join(' '), /403 \(node node-2 claims spiffe:\/\/cluster\.local\/ns\/sec\/sa\/web for .*, which is spiffe:\/\/cluster\.local\/ns\/sec\/sa\/client/);
  assert.ok((await denies()) > before, 'node-1 counted the refused streams');
  await sleep(800);
  const drops = observed('node-1', '-o', 'json').map((l) => JSON.parse(l) as ObservedFlow & { verdict?: string; policy?: { name?: string } })
    .filter((f) => f.type === 'drop' && f.mtls === true && f.destination.workload === 'vault-1');
  assert.ok(drops.some((f) => f.verdict === 'DROPPED' && f.policy?.name === 'sec/vault-from-client' && f.observer === 'server'), JSON.stringify(drops.slice(-2)));
});
