/**
 * `ebmesh bench lb`: connection setup + one request, through a Service VIP
 * translated at the socket, against the backend's IP directly, with 1,
 * 1,000 and 10,000 services installed, over IPv4 and over IPv6 (the mesh is
 * dual-stack and every Service has a VIP of each family, so both families'
 * maps hold as many frontends); and the same through iptables DNAT rules
 * laid out the way kube-proxy lays them out, from a namespace outside the
 * mesh (IPv4). The mesh instance, its address plan and the plain namespace
 * belong to the benchmark and are removed afterwards.
 */
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { instancePaths, vethName } from '../../src/paths.js';
import { runLoadgen, type LoadgenOptions } from '../loadgen.js';
import { sampleFootprint } from '../footprint.js';
import { benchLab, benchMesh } from './mesh-lab.js';
import { ConfigRuns, runFromLoad, type Scenario, type ScenarioContext } from '../scenario.js';

const SERVICE_CIDR = '10.98.0.0/16';
const POD_CIDR = '10.246.0.0/24';
const SERVICE_CIDR_V6 = 'fd00:eb:98::/112';
const POD_CIDR_V6 = 'fd00:eb:246::/64';
const PLAIN_IP = '10.246.0.250';

const base = (dir: string) => `${benchMesh({ serviceCIDR: SERVICE_CIDR, podCIDR: POD_CIDR, serviceCIDRv6: SERVICE_CIDR_V6, podCIDRv6: POD_CIDR_V6 })}---
apiVersion: v1
kind: Service
metadata: {name: target, namespace: bench}
spec: {selector: {app: server}, ipFamilyPolicy: RequireDualStack, ports: [{port: 80, targetPort: http}]}
# ${dir}
`;

/** Filler services 1..n, all on the same backend, a VIP of each family, as one List. */
function fillers(n: number): string {
  const items: string[] = [];
  for (let i = 1; i <= n; i++) {
    items.push(`- {apiVersion: v1, kind: Service, metadata: {name: fill-${i}, namespace: bench}, spec: {selector: {app: server}, ipFamilyPolicy: RequireDualStack, ports: [{port: 80, targetPort: http}]}}`);
  }
  return `apiVersion: v1\nkind: List\nitems:\n${items.join('\n')}\n`;
}

interface Svc { metadata: { name: string }; spec: { clusterIP: string; clusterIPs?: string[] } }

/** kube-proxy's layout: one KUBE-SERVICES chain matched in order, one chain per service. */
function kubeProxyRules(vips: string[], backend: string): string {
  const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]', ':KUBE-SERVICES - [0:0]'];
  vips.forEach((_, i) => lines.push(`:KUBE-SVC-${i} - [0:0]`));
  lines.push('-A OUTPUT -j KUBE-SERVICES');
  vips.forEach((vip, i) => {
    lines.push(`-A KUBE-SERVICES -d ${vip}/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-${i}`);
    lines.push(`-A KUBE-SVC-${i} -p tcp -m tcp -j DNAT --to-destination ${backend}`);
  });
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/**
 * The plain client's namespace, named and wired like a workload's of the
 * instance (netns prefix, veth name): `ebmesh down` removes it with the lab,
 * also after a crash.
 */
const plainNetns = (instance: string) => `${instancePaths(instance).netnsPrefix}plain`;

function setupPlainNetns(instance: string): void {
  const p = instancePaths(instance);
  const ns = plainNetns(instance);
  const veth = vethName(instance, 'plain');
  spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}p`]);
  execFileSync('ip', ['link', 'set', `${veth}p`, 'netns', ns]);
  execFileSync('ip', ['link', 'set', veth, 'master', p.bridge, 'up']);
  const inNs = (...a: string[]) => execFileSync('ip', ['-n', ns, ...a]);
  inNs('link', 'set', `${veth}p`, 'name', 'eth0');
  inNs('addr', 'add', `${PLAIN_IP}/24`, 'dev', 'eth0');
  inNs('link', 'set', 'lo', 'up');
  inNs('link', 'set', 'eth0', 'up');
  // VIPs go to the node, whose route for them is unreachable: a VIP that
  // iptables did not translate dies on this host.
  inNs('route', 'add', SERVICE_CIDR, 'via', '10.246.0.1');
}

function teardownPlainNetns(instance: string): void {
  spawnSync('ip', ['netns', 'del', plainNetns(instance)], { stdio: 'ignore' });
}

export const lb: Scenario = {
  name: 'lb',
  describe: 'connect + request latency: VIP at the socket vs backend IP (IPv4 and IPv6) vs iptables DNAT, with 1, 1,000 and 10,000 services',
  async run(ctx: ScenarioContext) {
    const lab = benchLab('lb');
    const cli = lab.cli;
    const counts = ctx.quick ? [1, 100] : [1, 1000, 10000];
    const rate = ctx.quick ? 200 : 1000;
    const durationS = ctx.quick ? 1 : 5;
    const dir = mkdtempSync(join(tmpdir(), 'ebmesh-bench-lb-'));
    const configs = new ConfigRuns();
    const add = configs.add.bind(configs);
    const notes: string[] = [];
    try {
      ctx.progress('starting a mesh instance for the benchmark');
      writeFileSync(join(dir, 'base.yaml'), base(dir));
      cli('up', '-f', join(dir, 'base.yaml'));
      const status = JSON.parse(cli('status', '-o', 'json')) as { pid: number };
      const { ip: server, ipv6: server6 } = (JSON.parse(cli('get', 'wl', 'server', '-n', 'bench', '-o', 'json')) as { spec: { ip: string; ipv6: string } }).spec;
      setupPlainNetns(lab.instance);
      const lg = (url: string, prefix: string[]) => (o: Partial<LoadgenOptions> = {}) =>
        runLoadgen({ url, rate, durationS, connections: 16, warmupS: ctx.quick ? 0.2 : 1, timeoutMs: 2000, connectEach: true, prefix, ...o });
      const inMesh = lab.exec('client');
      const plain = ['ip', 'netns', 'exec', plainNetns(lab.instance)];
      let installed = 1;
      for (const n of counts) {
        if (n > installed) {
          ctx.progress(`installing ${n} services`);
          writeFileSync(join(dir, 'fill.yaml'), fillers(n - 1));
          const t = Date.now();
          cli('apply', '-f', join(dir, 'fill.yaml'));
          notes.push(`apply of ${n - 1} services took ${((Date.now() - t) / 1000).toFixed(1)} s (parse, validate, store, program maps).`);
          installed = n;
        }
        const svcs = JSON.parse(cli('get', 'svc', '-n', 'bench', '-o', 'json')) as Svc[];
        const targetSpec = svcs.find((s) => s.metadata.name === 'target')!.spec;
        const target = targetSpec.clusterIP;
        const target6 = targetSpec.clusterIPs?.find((ip) => ip.includes(':'));
        if (!target6) throw new Error(`bench/target has no IPv6 VIP (clusterIPs ${JSON.stringify(targetSpec.clusterIPs)}): the mesh is not dual-stack`);
        const vips = svcs.filter((s) => s.metadata.name !== 'target').map((s) => s.spec.clusterIP);
        // The target sits in the middle of the chain: kube-proxy's rule order is arbitrary, so half the chain is the average walk.
        vips.splice(Math.floor(vips.length / 2), 0, target);
        const ipt = spawnSync('ip', ['netns', 'exec', plainNetns(lab.instance), 'iptables-restore'], { input: kubeProxyRules(vips, `${server}:8080`), encoding: 'utf8' });
        const haveIptables = ipt.status === 0;
        if (!haveIptables && n === counts[0]) notes.push(`iptables DNAT was not measured: iptables-restore failed (${(ipt.stderr ?? '').trim()}).`);
        for (let rep = 0; rep < ctx.repeats; rep++) {
          ctx.progress(`${n} services, repeat ${rep + 1}/${ctx.repeats}`);
          const agent = sampleFootprint([status.pid], 250, { descendants: false });
          add('direct (mesh client)', 'mesh client → backend IP:8080 (no service translation)', runFromLoad(await lg(`http://${server}:8080/`, inMesh)()));
          add(`VIP, ${n} services`, `mesh client → VIP:80, translated at connect() by cgroup/connect4; ${n} services installed`,
            runFromLoad(await lg(`http://${target}:80/`, inMesh)(), { agent: agent.stop() }), 'direct (mesh client)');
          add('direct IPv6 (mesh client)', 'mesh client → backend [IPv6]:8080 (no service translation)',
            runFromLoad(await lg(`http://[${server6}]:8080/`, inMesh)()), 'direct (mesh client)');
          add(`VIP IPv6, ${n} services`, `mesh client → [IPv6 VIP]:80, translated at connect() by cgroup/connect6 from the IPv6 maps; ${n} services installed (a VIP of each family)`,
            runFromLoad(await lg(`http://[${target6}]:80/`, inMesh)()), 'direct IPv6 (mesh client)');
          if (haveIptables) {
            add('direct (plain client)', 'client outside the mesh → backend IP:8080', runFromLoad(await lg(`http://${server}:8080/`, plain)()), 'direct (mesh client)');
            add(`iptables, ${n} services`, `client outside the mesh → VIP:80 through iptables DNAT (${2 * n} nat rules, kube-proxy layout)`,
              runFromLoad(await lg(`http://${target}:80/`, plain)()), 'direct (plain client)');
          }
        }
      }
      return {
        baseline: 'direct (mesh client)',
        configs: configs.results(),
        setup: [
          `# mesh: ebmesh --instance ${lab.instance} up -f base.yaml (dual-stack; one nginx backend, one worker, listening on both families; a client workload)`,
          `# load: loadgen --connect-each, ${rate} req/s open loop, ${durationS} s per run, 16 concurrent, run inside the client (ebmesh exec) or the plain namespace (ip netns exec)`,
          `# iptables: iptables-restore in the plain namespace, KUBE-SERVICES chain with one -d VIP --dport 80 rule per service, target in the middle`,
        ],
        notes: [
          ...notes,
          'Each request opens a new TCP connection: the socket LB acts once per connect(), iptables DNAT once per connection through conntrack.',
          'VIP figures compare with the direct connection from the same client and family (IPv6 VIP with direct IPv6); iptables figures with the direct connection from the plain client.',
        ],
      };
    } finally {
      teardownPlainNetns(lab.instance);
      lab.down();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
