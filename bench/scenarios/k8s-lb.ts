/**
 * `ebmesh bench k8s-lb`: the cluster's service proxy compared, in the real
 * one-node cluster of scripts/k8s-lab.sh: ebmesh (its chart) against
 * kube-proxy in iptables and in nftables mode, with 10, 1,000 and 10,000
 * Services, in one run. Each measurement is connection setup + one request
 * from a client pod, through a Service VIP and, as the baseline of the same
 * moment, to the backend pod's IP directly. The order of the three proxies
 * changes from repeat to repeat.
 *
 * Then, with ebmesh serving: how long an EndpointSlice change takes from the
 * API server's answer to `apply` until the node's kernel maps hold it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { cgroup2Root, openPinnedMap } from '../../src/kernel/index.js';
import { Lb4Backend, Lb4Frontend, Lb4FrontendKey, Lb4Slot, Lb4SlotKey, U32Key } from '../../src/abi/structs.js';
import { inWorkload } from '../../src/host/cgroup.js';
import { findPodCgroup, type QosClass } from '../../src/k8s/pod-cgroup.js';
import { KubeClient, type KubeObject } from '../../src/k8s/client.js';
import { kubeconfigAccess } from '../../src/k8s/access.js';
import { runLoadgen } from '../loadgen.js';
import { summarize } from '../stats.js';
import { ConfigRuns, runFromLoad, type Scenario, type ScenarioContext } from '../scenario.js';

/** The value below which a fraction q of the sorted values lie (nearest rank). */
function percentile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
}

const LAB = join(PACKAGE_ROOT, 'scripts', 'k8s-lab.sh');
const NS = 'ebmesh-bench';
type Proxy = 'ebmesh' | 'iptables' | 'nftables';
const PROXIES: Proxy[] = ['ebmesh', 'iptables', 'nftables'];

function lab(...args: string[]): string {
  const r = spawnSync('bash', [LAB, ...args], { encoding: 'utf8', timeout: 1_800_000, maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`k8s-lab.sh ${args.join(' ')}: ${(r.stderr || r.stdout).trim().split('\n').slice(-8).join('\n')}`);
  return r.stdout;
}
/** What `k8s-lab.sh env` prints: NAME=VALUE lines, KUBECONFIG's as `export KUBECONFIG=…` (it is meant to be sourced). */
function labEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lab('env').split('\n')) {
    const m = /^(?:export\s+)?([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}
const kubectl = (args: string[], input?: string) => {
  const r = spawnSync('bash', [LAB, 'kubectl', ...args], { encoding: 'utf8', input, timeout: 1_800_000, maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`kubectl ${args.slice(0, 4).join(' ')}: ${(r.stderr || r.stdout).trim().slice(-600)}`);
  return r.stdout;
};

const workloads = (image: string) => `apiVersion: v1
kind: Namespace
metadata: {name: ${NS}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: server-conf, namespace: ${NS}}
data:
  nginx.conf: |
    daemon off; pid /tmp/nginx.pid; error_log stderr; worker_processes 1;
    events { worker_connections 4096; }
    http { access_log off; server { listen 8080 backlog=4096; location / { return 200 "ok\\n"; } } }
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: ${NS}, labels: {app: server}}
spec:
  containers:
  - {name: nginx, image: ${image}, command: [nginx, -c, /etc/web/nginx.conf], ports: [{name: http, containerPort: 8080}],
     readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}, volumeMounts: [{name: conf, mountPath: /etc/web}]}
  volumes: [{name: conf, configMap: {name: server-conf}}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: ${NS}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: ${image}, command: [sleep, infinity]}]
---
apiVersion: v1
kind: Service
metadata: {name: target, namespace: ${NS}}
spec: {selector: {app: server}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: probe, namespace: ${NS}}
spec: {ports: [{port: 80, targetPort: 8080}]}
`;

/** Services fill-(from)..fill-(to-1), all on the one server. */
function fillers(from: number, to: number): string {
  const items: string[] = [];
  for (let i = from; i < to; i++) items.push(`- {apiVersion: v1, kind: Service, metadata: {name: fill-${i}, namespace: ${NS}}, spec: {selector: {app: server}, ports: [{port: 80, targetPort: http}]}}`);
  return `apiVersion: v1\nkind: List\nitems:\n${items.join('\n')}\n`;
}

/** The argv prefix that runs a command as part of a pod: in its cgroup (where ebmesh's programs are) and its network namespace. */
function inPodPrefix(pod: string): string[] {
  const o = JSON.parse(kubectl(['-n', NS, 'get', 'pod', pod, '-o', 'json'])) as { metadata: { uid: string }; status: { qosClass?: QosClass } };
  const cg = findPodCgroup(cgroup2Root(), o.metadata.uid, o.status.qosClass);
  if (!cg) throw new Error(`no cgroup for pod ${pod}`);
  const pids = (dir: string): number[] => {
    try {
      return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch { return []; }
  };
  const sub = execFileSync('ls', [cg], { encoding: 'utf8' }).split('\n').filter((d) => /^[0-9a-f]{64}$/.test(d));
  const pid = sub.flatMap((d) => pids(join(cg, d))).find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('sleep'));
  if (!pid) throw new Error(`no process of pod ${pod} found in ${cg}`);
  const [file, args] = inWorkload(join(cg, 'bench'), `/proc/${pid}/ns/net`, []);
  execFileSync('mkdir', ['-p', join(cg, 'bench')]);
  return [file, ...args];
}

/** The kernel's backend port for a VIP:port, by lookups of the pinned maps (a read of a few entries, not of the maps). */
function kernelBackendPort(pins: string, vip: string, port: number): number | undefined {
  const fe = openPinnedMap(join(pins, 'ebm_lb4_frontends'), Lb4FrontendKey, Lb4Frontend);
  const slots = openPinnedMap(join(pins, 'ebm_lb4_slots'), Lb4SlotKey, Lb4Slot);
  const be = openPinnedMap(join(pins, 'ebm_lb4_backends'), U32Key, Lb4Backend);
  try {
    const f = fe.get({ vip, port, proto: 6, pad: 0 });
    if (!f || !f.count) return undefined;
    const s = slots.get({ frontend_id: f.id, slot: 1 }) ?? slots.get({ frontend_id: f.id, slot: 0 });
    return s ? be.get(s.backend_id)?.port : undefined;
  } finally {
    fe.raw.close(); slots.raw.close(); be.raw.close();
  }
}

async function sliceLatency(ctx: ScenarioContext, instance: string, serverIp: string, probeVip: string, n: number): Promise<number[]> {
  const env = labEnv();
  const client = new KubeClient(kubeconfigAccess(env.KUBECONFIG!));
  const pins = `/sys/fs/bpf/ebmesh/${instance}/maps`;
  const path = `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`;
  const slice = (port: number): KubeObject => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: 'probe-manual', namespace: NS, labels: { 'kubernetes.io/service-name': 'probe', 'endpointslice.kubernetes.io/managed-by': 'ebmesh-bench' } },
    addressType: 'IPv4', endpoints: [{ addresses: [serverIp], conditions: { ready: true } }], ports: [{ port, protocol: 'TCP' }],
  });
  await client.request('DELETE', `${path}/probe-manual`).catch(() => undefined);
  await client.request('POST', path, slice(8080));
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const want = i % 2 ? 8080 : 8081;
      const cur = await client.request<KubeObject>('GET', `${path}/probe-manual`);
      await client.request('PUT', `${path}/probe-manual`, { ...slice(want), metadata: { ...slice(want).metadata, resourceVersion: cur.metadata.resourceVersion } });
      const t0 = performance.now();
      while (kernelBackendPort(pins, probeVip, 80) !== want) {
        if (performance.now() - t0 > 10_000) throw new Error(`the kernel did not see the slice change to port ${want} in 10 s`);
        await new Promise((r) => setTimeout(r, 1));
      }
      out.push(performance.now() - t0);
      if (i % 10 === 9) ctx.progress(`slice changes: ${i + 1}/${n}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await client.request('DELETE', `${path}/probe-manual`).catch(() => undefined);
    client.close();
  }
  return out;
}

export const k8sLb: Scenario = {
  name: 'k8s-lb',
  onlyByName: true,
  describe: 'Kubernetes service proxy: ebmesh vs kube-proxy (iptables, nftables) with 10, 1,000 and 10,000 Services; EndpointSlice change to kernel maps',
  async run(ctx: ScenarioContext) {
    const counts = ctx.quick ? [10, 100] : [10, 1000, 10000];
    const rate = ctx.quick ? 200 : 1000;
    const durationS = ctx.quick ? 1 : 5;
    const configs = new ConfigRuns();
    const notes: string[] = [];
    ctx.progress('bringing up the Kubernetes lab cluster (scripts/k8s-lab.sh up)');
    lab('up');
    let current: Proxy = 'ebmesh';
    const env = labEnv();
    const instance = env.K8S_EBMESH_INSTANCE!;
    try {
      kubectl(['apply', '--server-side', '-f', '-'], workloads(env.K8S_TOOLBOX_IMAGE!));
      kubectl(['-n', NS, 'wait', '--for=condition=Ready', 'pod/server', 'pod/client', '--timeout=180s']);
      const serverIp = kubectl(['-n', NS, 'get', 'pod', 'server', '-o', 'jsonpath={.status.podIP}']).trim();
      const vipOf = (svc: string) => kubectl(['-n', NS, 'get', 'svc', svc, '-o', 'jsonpath={.spec.clusterIP}']).trim();
      const target = vipOf('target');
      let installed = 0;
      const use = (p: Proxy) => {
        if (p === current) return;
        ctx.progress(`switching the service proxy to ${p}`);
        const t = Date.now();
        lab('service-proxy', p);
        current = p;
        notes.push(`switch to ${p} with ${installed} Services: ${((Date.now() - t) / 1000).toFixed(0)} s.`);
      };
      /** Until the VIP answers from the client (the proxy has programmed it), bounded. */
      const ready = async (prefix: string[]) => {
        for (let i = 0; i < 600; i++) {
          const r = spawnSync(prefix[0]!, [...prefix.slice(1), 'curl', '-s', '-m', '1', `http://${target}/`], { encoding: 'utf8' });
          if (r.stdout.trim() === 'ok') return;
          await new Promise((res) => setTimeout(res, 500));
        }
        throw new Error(`${current}: the VIP ${target} did not answer in 300 s`);
      };
      for (const n of counts) {
        if (n > installed + 2) {
          ctx.progress(`creating Services up to ${n}`);
          for (let from = installed; from < n - 2; from += 2000) kubectl(['apply', '--server-side', '-f', '-'], fillers(from, Math.min(n - 2, from + 2000)));
          installed = n - 2;
        }
        for (let rep = 0; rep < ctx.repeats; rep++) {
          // A different order each repeat: no proxy always comes first, or right after a switch.
          const order = PROXIES.map((p, i) => PROXIES[(i + rep) % PROXIES.length]!);
          if (rep % 2) order.reverse();
          for (const p of order) {
            use(p);
            const prefix = inPodPrefix('client');
            await ready(prefix);
            ctx.progress(`${n} Services, ${p}, repeat ${rep + 1}/${ctx.repeats}`);
            const lg = (url: string) => runLoadgen({ url, rate, durationS, connections: 16, warmupS: ctx.quick ? 0.2 : 1, timeoutMs: 2000, connectEach: true, prefix });
            const direct = `direct (${p})`;
            configs.add(direct, `client pod → server pod IP:8080, ${p} serving the cluster`, runFromLoad(await lg(`http://${serverIp}:8080/`)), 'direct (ebmesh)');
            configs.add(`${p}, ${n} Services`, `client pod → VIP:80 by ${p}; ${n} Services in the cluster`, runFromLoad(await lg(`http://${target}:80/`)), direct);
          }
        }
      }
      use('ebmesh');
      await ready(inPodPrefix('client'));
      ctx.progress('EndpointSlice changes to kernel maps');
      const lat = await sliceLatency(ctx, instance, serverIp, vipOf('probe'), ctx.quick ? 10 : 100);
      const s = summarize(lat);
      const p99 = percentile(lat, 0.99);
      notes.push(`EndpointSlice change → kernel maps over ${lat.length} changes with ${installed + 2} Services: p50 ${s.median.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, min ${s.min.toFixed(1)}, max ${s.max.toFixed(1)} ms (from the API server's answer to the PUT to the map lookup that sees it, polled every 1 ms).`);
      return {
        baseline: 'direct (ebmesh)',
        configs: configs.results(),
        setup: [
          '# cluster: bash scripts/k8s-lab.sh up (Kubernetes v1.35.4, one node); proxies switched with k8s-lab.sh service-proxy ebmesh|iptables|nftables',
          `# load: loadgen --connect-each, ${rate} req/s open loop, ${durationS} s per run, 16 concurrent, in the client pod's cgroup and network namespace`,
          '# Services fill-N: each on the same server pod, one port; target and probe are the measured ones',
        ],
        notes: [
          ...notes,
          'Each VIP figure compares with the direct connection measured right before it under the same proxy.',
          'kube-proxy iptables translates every new connection through the KUBE-SERVICES chain and conntrack; nftables through a verdict map; ebmesh at connect() in the pod\'s cgroup.',
        ],
        tables: [{
          title: 'EndpointSlice change to kernel maps (ms)',
          header: ['changes', 'p50', 'p99', 'min', 'max'],
          rows: [[String(lat.length), s.median.toFixed(1), p99.toFixed(1), s.min.toFixed(1), s.max.toFixed(1)]],
        }],
      };
    } finally {
      try {
        if (current !== 'ebmesh') lab('service-proxy', 'ebmesh');
      } catch (e) { notes.push(`putting ebmesh back failed: ${(e as Error).message}`); }
      spawnSync('bash', [LAB, 'kubectl', 'delete', 'namespace', NS, '--wait=false'], { stdio: 'ignore' });
    }
  },
};
