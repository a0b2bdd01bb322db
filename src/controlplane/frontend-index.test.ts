import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrontendIndex } from './frontend-index.js';
import { computeFrontends } from './lb.js';
import { defaultMesh, type Snapshot, type WorkloadStatus } from './state.js';
import { Service, Workload, type ServiceResource, type WorkloadResource } from '../resources/schemas.js';
import type { AnyResource } from '../resources/index.js';

/** A small deterministic PRNG: a failing sequence can be replayed from its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const NS = ['a', 'b'];
const APPS = ['x', 'y', 'z'];
const TIERS = ['web', 'db'];

function randomService(r: () => number, name: string, ns: string): ServiceResource {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const sel: Record<string, string> = {};
  const shape = r();
  if (shape < 0.45) sel.app = pick(APPS);
  else if (shape < 0.85) { sel.app = pick(APPS); sel.tier = pick(TIERS); }
  else if (shape < 0.92) sel.tier = pick(TIERS);
  // else: no selector, no endpoints
  const nodePort = r() < 0.3;
  return Service.parse({
    apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns },
    spec: {
      clusterIP: r() < 0.9 ? `10.96.0.${1 + Math.floor(r() * 200)}` : undefined,
      selector: sel,
      ...(nodePort ? { type: 'NodePort' } : {}),
      ports: [
        { name: 'web', port: 80, targetPort: r() < 0.5 ? 8080 : 'http', protocol: 'TCP', ...(nodePort ? { nodePort: 30000 + Math.floor(r() * 100) } : {}) },
        ...(r() < 0.3 ? [{ name: 'dns', port: 53, protocol: 'UDP' as const }] : []),
      ],
      ...(r() < 0.2 ? { sessionAffinity: 'ClientIP' } : {}),
    },
  });
}

function randomWorkload(r: () => number, name: string, ns: string): WorkloadResource {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const labels: Record<string, string> = { app: pick(APPS) };
  if (r() < 0.6) labels.tier = pick(TIERS);
  const kind = r();
  return Workload.parse({
    apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload', metadata: { name, namespace: ns, labels },
    spec: {
      ...(kind < 0.4 ? { external: true, ip: `10.250.0.${1 + Math.floor(r() * 250)}` } : { command: ['sleep', '1'] }),
      ...(kind > 0.8 ? { ip: `10.244.0.${1 + Math.floor(r() * 250)}` } : {}),
      ports: [{ containerPort: 8080, name: r() < 0.7 ? 'http' : 'other', protocol: 'TCP' }, { containerPort: 53, protocol: 'UDP' }],
    },
  });
}

function randomStatus(r: () => number): WorkloadStatus | undefined {
  const x = r();
  if (x < 0.2) return undefined;
  if (x < 0.4) return { phase: 'Pending' };
  return { phase: 'Running', ready: r() < 0.8, ip: `10.244.0.${1 + Math.floor(r() * 250)}` };
}

const byKey = <T extends { metadata: { namespace: string; name: string } }>(m: Map<string, T>) =>
  [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
  test(`FrontendIndex equals computeFrontends over a random sequence of changes (seed ${seed})`, () => {
    const r = rng(seed);
    const services = new Map<string, ServiceResource>();
    const workloads = new Map<string, WorkloadResource>();
    const statuses = new Map<string, WorkloadStatus>();
    const index = new FrontendIndex();
    let nodeAddresses: string[] = ['192.168.0.1'];
    for (let step = 0; step < 300; step++) {
      // Several changes per snapshot, as a coalesced reconcile sees them.
      const n = 1 + Math.floor(r() * 4);
      for (let c = 0; c < n; c++) {
        const ns = NS[Math.floor(r() * NS.length)]!;
        const x = r();
        if (x < 0.15) {
          const name = `s${Math.floor(r() * 8)}`;
          services.set(`${ns}/${name}`, randomService(r, name, ns));
        } else if (x < 0.22) {
          services.delete(`${ns}/s${Math.floor(r() * 8)}`);
        } else if (x < 0.6) {
          const name = `w${Math.floor(r() * 25)}`;
          workloads.set(`${ns}/${name}`, randomWorkload(r, name, ns));
        } else if (x < 0.64) {
          // A node joins or leaves: NodePort Services are served on its addresses or no longer.
          nodeAddresses = ['192.168.0.1', ...(r() < 0.5 ? ['192.168.0.2', 'fd00::2'] : [])];
        } else if (x < 0.72) {
          const key = `${ns}/w${Math.floor(r() * 25)}`;
          workloads.delete(key);
          if (r() < 0.5) statuses.delete(key);
        } else {
          const key = `${ns}/w${Math.floor(r() * 25)}`;
          const st = randomStatus(r);
          if (st) statuses.set(key, st); else statuses.delete(key);
        }
      }
      const snap: Snapshot = {
        revision: step, mesh: defaultMesh, namespaces: [], others: new Map(),
        services: byKey(services), workloads: byKey(workloads), workloadStatus: new Map(statuses), nodeAddresses,
      };
      assert.deepEqual(index.compute(snap), computeFrontends(snap), `seed ${seed} step ${step}`);
    }
  });
}

test('FrontendIndex recomputes only the Services a workload change can touch', () => {
  const services = Array.from({ length: 50 }, (_, i) => Service.parse({
    apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'n' },
    spec: { clusterIP: `10.96.1.${i + 1}`, selector: { app: `s${i}` }, ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }] },
  }));
  const wl = (j: number, app: string) => Workload.parse({
    apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload', metadata: { name: `e${j}`, namespace: 'n', labels: { app } },
    spec: { external: true, ip: `10.250.0.${j + 1}`, ports: [{ containerPort: 8080, protocol: 'TCP' }] },
  });
  const workloads = Array.from({ length: 200 }, (_, j) => wl(j, `s${j % 50}`));
  const snap = (ws: WorkloadResource[], rev: number): Snapshot => ({
    revision: rev, mesh: defaultMesh, namespaces: [], others: new Map(), services, workloads: ws, workloadStatus: new Map(),
  });
  const index = new FrontendIndex();
  index.compute(snap(workloads, 1));
  assert.equal(index.lastRecomputed, 50);
  const moved = [...workloads];
  moved[7] = wl(7, 's9'); // from s7 to s9
  const out = index.compute(snap(moved, 2));
  assert.equal(index.lastRecomputed, 2);
  assert.deepEqual(out, computeFrontends(snap(moved, 2)));
  index.compute(snap(moved, 3));
  assert.equal(index.lastRecomputed, 0);
});

test('a NodePort Service has a frontend per node address of its family and node port, with the VIP\'s backends; a port with L7 rules gets none to go around them', () => {
  const svc = Service.parse({
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'n' },
    spec: { type: 'NodePort', clusterIP: '10.96.0.9', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30080 }] },
  });
  const w = Workload.parse({
    apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload', metadata: { name: 'w', namespace: 'n', labels: { app: 'web' } },
    spec: { external: true, ip: '10.250.0.4', ports: [{ containerPort: 8080, protocol: 'TCP' }] },
  });
  const snap: Snapshot = {
    revision: 1, mesh: defaultMesh, namespaces: [], others: new Map(), services: [svc], workloads: [w], workloadStatus: new Map(),
    nodeAddresses: ['192.168.0.1', '192.168.0.2', 'fd00::1'],
  };
  const fes = computeFrontends(snap);
  assert.deepEqual(fes.map((f) => `${f.vip}:${f.port} ${f.nodePort ? 'node' : 'vip'} ${f.backends.map((b) => `${b.ip}:${b.port}`).join(',')}`), [
    '10.96.0.9:80 vip 10.250.0.4:8080',
    '192.168.0.1:30080 node 10.250.0.4:8080',
    '192.168.0.2:30080 node 10.250.0.4:8080',
  ], 'an IPv4-only Service is not served at the node\'s IPv6 address');
  const route = {
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'n' },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] },
  } as unknown as AnyResource;
  const steered = computeFrontends({ ...snap, others: new Map([['HTTPRoute', [route]]]) });
  assert.equal(steered.find((f) => !f.nodePort)?.l7, true);
  assert.deepEqual(steered.filter((f) => f.nodePort).map((f) => [f.backends.length, f.l7]), [[0, undefined], [0, undefined]]);
  assert.deepEqual(computeFrontends({ ...snap, services: [Service.parse({ ...svc, spec: { ...svc.spec, type: 'ClusterIP', ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }] } })] }).length, 1);
});
