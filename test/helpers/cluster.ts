/**
 * A multi-node lab for integration tests: a TestMesh whose address plan has
 * room for several nodes' /24s, brought up with `ebmesh up --nodes N`, and
 * what the multi-node tests do to it from outside the mesh (a node's own
 * network namespace, its API, the fabric link, the tunnel test client).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { join } from 'node:path';
import { TestMesh } from './mesh.js';
import { PACKAGE_ROOT, nodeNetns, nodePaths } from '../../src/paths.js';
import { fabricNetns, nodeAddress } from '../../src/lab/cluster.js';
import { gatewayOf } from '../../src/host/network.js';
import { mustParseCidr } from '../../src/net/ipam.js';
import { TUNNEL_PORT } from '../../src/tunnel/protocol.js';
import { instanceClient } from '../../src/cli/client.js';
import { nodeApi as nodeRoutes } from '../../src/api/node.js';
import type { InputOf, OutputOf, RouteSpec } from '../../src/api/route.js';

/** What `ebmesh status -o json` says of a multi-node lab, as far as the tests read it. */
export interface ClusterStatus {
  revision: number;
  nodes: Array<{
    name: string; healthy: boolean; podSubnet: string; appliedRevision?: number; certs: number; earliestCertExpiry?: string;
    tunnel?: { listening?: boolean; spiffeId?: string; certExpiry?: string; sessions?: number; streams?: number; streamsDenied?: number };
  }>;
  workloads: Array<{ name: string; namespace: string; node: string; ip: string; ready: boolean; identity: string }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class TestCluster extends TestMesh {
  override readonly podCIDR: string;

  constructor(tag: string) {
    super(tag);
    this.podCIDR = `10.246.${(process.pid % 60) * 4}.0/22`;
  }

  /** The lab's status; `status` exits 1 while a node is unhealthy (for scripts), and prints the JSON either way. */
  status(): ClusterStatus {
    const r = this.cli('status', '-o', 'json');
    try {
      return JSON.parse(r.stdout) as ClusterStatus;
    } catch {
      throw new Error(`ebmesh status -o json exited ${r.code} without JSON: ${r.stderr}`);
    }
  }

  /** Polls (30 s at most) until every node's tunnel endpoint listens and every workload is ready; the last status either way. */
  async waitTunnels(): Promise<ClusterStatus> {
    const until = Date.now() + 30_000;
    let st = this.status();
    while (Date.now() < until && !(st.nodes.every((n) => n.tunnel?.listening) && st.workloads.every((w) => w.ready))) {
      await sleep(200);
      st = this.status();
    }
    return st;
  }

  /** A workload's address, by namespace and name. */
  ipOf(st: ClusterStatus, namespace: string, name: string): string {
    const w = st.workloads.find((x) => x.namespace === namespace && x.name === name);
    if (!w) throw new Error(`no workload ${namespace}/${name} in status`);
    return w.ip;
  }

  /** Runs ARGV in a node's own network namespace: outside the mesh, so nothing steers it into the tunnel. */
  inNode(node: string, argv: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
    return spawnSync('nsenter', [`--net=/var/run/netns/${nodeNetns(this.instance, node)}`, '--', ...argv], {
      encoding: 'utf8', timeout: opts.timeoutMs ?? 30_000, env: opts.env ?? process.env,
    });
  }

  /** A call of a node agent's API. */
  async nodeApi<R extends RouteSpec>(node: string, route: R, input: InputOf<R>): Promise<OutputOf<R>> {
    return await instanceClient(nodePaths(this.instance, node)).call(route, input);
  }

  async nodeCounters(node: string): Promise<Record<string, number>> {
    return (await this.nodeApi(node, nodeRoutes.status, {})).datapath.counters;
  }

  /** Where a node keeps its node SVID (cert.pem, key.pem). */
  svidDir(node: string): string {
    return join(nodePaths(this.instance, node).stateDir, 'node-svid');
  }

  /**
   * A plain curl from NODE's own namespace to http://IP:8080/, sent from the
   * node's pod gateway address: a pod-CIDR source the destination can answer,
   * so only the strict table (not a missing route) can refuse it.
   */
  plainCurlFromNode(st: ClusterStatus, node: string, ip: string): SpawnSyncReturns<string> {
    const subnet = st.nodes.find((n) => n.name === node)?.podSubnet;
    if (!subnet) throw new Error(`no node ${node} in status`);
    return this.inNode(node, ['curl', '-s', '--max-time', '2', '--interface', gatewayOf(mustParseCidr(subnet)), `http://${ip}:8080/`], { timeoutMs: 10_000 });
  }

  /**
   * Asserts that plaintext from FROM's own namespace to IP, a strict
   * workload on node TO, is refused by TO's strict table: the curl fails and
   * TO counts the dropped SYNs (so it was refused, not lost for want of a route).
   */
  async assertStrictRefusesPlaintext(st: ClusterStatus, from: string, to: string, ip: string): Promise<void> {
    const drops = async () => (await this.nodeCounters(to)).mtls_strict_drop ?? 0;
    const before = await drops();
    const plain = this.plainCurlFromNode(st, from, ip);
    assert.notEqual(plain.status, 0, `plaintext reached a strict workload: ${plain.stdout}`);
    assert.ok((await drops()) > before, `${to} counted the dropped plaintext SYNs`);
  }

  /**
   * Runs the tunnel test client (fixtures/tunnel-client.mjs) from FROM's
   * namespace with the certificate in SVID against node-1's endpoint, opening
   * streams to TARGET (ip:port) for SECONDS; env sets what it claims.
   */
  tunnelClient(from: string, svid: string, target: string, seconds: string, marker: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): SpawnSyncReturns<string> {
    return this.inNode(from, this.tunnelClientArgv(svid, target, seconds, marker), { timeoutMs, env: { ...process.env, ...env } });
  }

  /** tunnelClient in the background, for a test that acts on the mesh while it runs (killed after timeoutMs). */
  tunnelClientAsync(from: string, svid: string, target: string, seconds: string, marker: string, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = spawn('nsenter', [`--net=/var/run/netns/${nodeNetns(this.instance, from)}`, '--', ...this.tunnelClientArgv(svid, target, seconds, marker)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    return new Promise((resolve) => child.once('close', (code) => { clearTimeout(killer); resolve({ code, stdout, stderr }); }));
  }

  private tunnelClientArgv(svid: string, target: string, seconds: string, marker: string): string[] {
    return [process.execPath, join(PACKAGE_ROOT, 'test/integration/fixtures/tunnel-client.mjs'), svid, nodeAddress(0), String(TUNNEL_PORT), target, seconds, marker];
  }

  /**
   * Captures TCP on IFACE of the fabric (the inter-node wire: n0 is node-1's
   * link) into FILE while BODY runs; the capture is stopped and flushed
   * before this returns or throws.
   */
  async captureFabric<T>(iface: string, file: string, body: () => Promise<T>): Promise<T> {
    // --immediate-mode: without it libpcap hands packets over a ring block at a time (up to 1 s late), and
    // the packets of the block still open when tcpdump is stopped are lost: the body's last requests.
    const dump = spawn('ip', ['netns', 'exec', fabricNetns(this.instance), 'tcpdump', '--immediate-mode', '-i', iface, '-U', '-B', '32768', '-s', '0', '-w', file, 'tcp'], { stdio: 'ignore' });
    const closed = new Promise((r) => dump.once('close', r));
    try {
      await sleep(1000); // tcpdump needs a moment before it captures
      return await body();
    } finally {
      dump.kill('SIGINT');
      await closed;
    }
  }
}

/** Indents every line of S by N spaces (to embed a file in a YAML block scalar). */
export const indent = (s: string, n: number) => s.split('\n').map((l) => ' '.repeat(n) + l).join('\n');

/** An HTTP/1.1 server (keep-alive) that answers with its workload's name. */
export const NAME_SERVER = `import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        b = (os.environ['EBMESH_WORKLOAD'] + '\\n').encode()
        self.send_response(200); self.send_header('content-length', str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('0.0.0.0', 8080), H).serve_forever()
`;

/** A Workload running NAME_SERVER (or CODE) on port http (8080), on NODE. */
export function nameServerWorkload(o: { name: string; namespace: string; node: string; labels: string; serviceAccount: string; code?: string }): string {
  return `apiVersion: ebmesh.io/v1alpha1
kind: Workload
metadata: {name: ${o.name}, namespace: ${o.namespace}, labels: {${o.labels}}}
spec:
  node: ${o.node}
  serviceAccount: ${o.serviceAccount}
  command: [python3, srv.py]
  ports: [{name: http, containerPort: 8080}]
  files:
    srv.py: |
${indent(o.code ?? NAME_SERVER, 6)}
---
`;
}

/**
 * A bounded client loop: one keep-alive connection sending a request every
 * 20 ms, and a new connection every 50 ms, for SECONDS (or until the file
 * named by an optional third argument appears); prints a JSON tally.
 */
export const CLIENT_LOOP = `import http.client, json, sys, time, threading, os
host, secs = sys.argv[1], float(sys.argv[2])
stop = sys.argv[3] if len(sys.argv) > 3 else None
tally = {'keepalive_ok': 0, 'keepalive_fail': 0, 'new_ok': 0, 'new_fail': 0, 'resets': 0, 'errors': []}
start = time.time()
end = start + secs
def running():
    return time.time() < end and not (stop and os.path.exists(stop))
def keepalive():
    c = http.client.HTTPConnection(host, 80, timeout=3)
    while running():
        try:
            c.request('GET', '/'); r = c.getresponse(); r.read()
            tally['keepalive_ok' if r.status == 200 else 'keepalive_fail'] += 1
        except Exception as e:
            tally['keepalive_fail'] += 1; tally['resets'] += isinstance(e, ConnectionResetError); tally['errors'].append('ka at %.2fs: %r' % (time.time() - start, e)); c = http.client.HTTPConnection(host, 80, timeout=3)
        time.sleep(0.02)
def fresh():
    while running():
        try:
            c = http.client.HTTPConnection(host, 80, timeout=3); c.request('GET', '/', headers={'connection': 'close'}); r = c.getresponse(); r.read(); c.close()
            tally['new_ok' if r.status == 200 else 'new_fail'] += 1
        except Exception as e:
            tally['new_fail'] += 1; tally['resets'] += isinstance(e, ConnectionResetError); tally['errors'].append('new at %.2fs: %r' % (time.time() - start, e))
        time.sleep(0.05)
ts = [threading.Thread(target=keepalive), threading.Thread(target=fresh)]
[t.start() for t in ts]; [t.join() for t in ts]
tally['errors'] = tally['errors'][:5]
print(json.dumps(tally))
`;

/** Failures of either kind; resets: the failures that were a connection reset (counted among them). */
export interface LoopTally { keepalive_ok: number; keepalive_fail: number; new_ok: number; new_fail: number; resets: number; errors: string[] }

/** CLIENT_LOOP's last line, from a run that must have exited 0. */
export function loopTally(out: { code: number; stdout: string; stderr: string }): LoopTally {
  if (out.code !== 0) throw new Error(`client loop exited ${out.code}: ${out.stderr}`);
  return JSON.parse(out.stdout.trim().split('\n').pop()!) as LoopTally;
}
