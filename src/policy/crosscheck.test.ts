/**
 * Property-style cross-check: on many random worlds and policies (fixed
 * seed, so a failure reproduces), the compiled tables judged the kernel's
 * way must agree with the spec evaluator on every flow, including flows
 * from and to addresses outside the mesh.
 *
 * Workloads' named ports are a function of their labels, so every
 * workload of an identity agrees on them: the one case where the compiler
 * knowingly over-allows (and warns) is excluded, and asserted absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Namespace, Workload, type NamespaceResource, type WorkloadResource } from '../resources/schemas.js';
import { NetworkPolicy, type NetworkPolicyInput } from '../resources/networkpolicy.js';
import { compilePolicies } from './compile.js';
import { allocateIdentities } from './identity.js';
import { evaluateSpec } from './semantics.js';
import { PolicyTables } from './verdict.js';
import type { Endpoint, Flow, PolicyWorld } from './world.js';

/** mulberry32: tiny, seedable, good enough to spread cases. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const chance = (p: number) => next() < p;
  return { int, pick, chance };
}
type Rng = ReturnType<typeof rng>;

const KEYS = ['app', 'tier', 'env'] as const;
const VALUES = ['a', 'b', 'c'] as const;
const NSS = ['n1', 'n2', 'n3'] as const;
const PORTS = [53, 80, 81, 443, 8080, 9000] as const;
const OUTSIDE = ['192.0.2.1', '192.0.2.200', '198.51.100.7'] as const;

function randLabels(r: Rng): Record<string, string> {
  const l: Record<string, string> = {};
  for (const k of KEYS) if (r.chance(0.6)) l[k] = r.pick(VALUES);
  return l;
}

function randSelector(r: Rng): Record<string, unknown> {
  const sel: Record<string, unknown> = {};
  if (r.chance(0.5)) { const k = r.pick(KEYS); sel.matchLabels = { [k]: r.pick(VALUES) }; }
  if (r.chance(0.35)) {
    const op = r.pick(['In', 'NotIn', 'Exists', 'DoesNotExist'] as const);
    const key = r.pick(KEYS);
    sel.matchExpressions = [op === 'In' || op === 'NotIn' ? { key, operator: op, values: [r.pick(VALUES), r.pick(VALUES)].filter((v, i, a) => a.indexOf(v) === i) } : { key, operator: op }];
  }
  return sel;
}

function randCidr(r: Rng, ips: string[]): { cidr: string; except?: string[] } {
  const pickBase = r.chance(0.8) && ips.length ? r.pick(ips) : r.pick(OUTSIDE);
  const [a, b, c, d] = pickBase.split('.').map(Number) as [number, number, number, number];
  const len = r.pick([0, 8, 16, 24, 28, 32]);
  const cidr = `${a}.${b}.${c}.${d}/${len}`;
  if (len >= 32 || !r.chance(0.5)) return { cidr };
  // Excepts around some address (often a workload's) inside the block.
  const except: string[] = [];
  for (let i = 0; i < 1 + r.int(2); i++) {
    const inside = ips.filter((ip) => {
      const [p, q, s, t] = ip.split('.').map(Number) as [number, number, number, number];
      const n = ((p << 24) | (q << 16) | (s << 8) | t) >>> 0;
      const base = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
      const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
      return ((n & mask) >>> 0) === ((base & mask) >>> 0);
    });
    if (!inside.length) break;
    const elen = r.pick([len + 1, 30, 31, 32].filter((x) => x > len && x <= 32));
    except.push(`${r.pick(inside)}/${elen}`);
  }
  return except.length ? { cidr, except } : { cidr };
}

function randPorts(r: Rng): unknown[] | undefined {
  if (r.chance(0.3)) return undefined;
  const out: unknown[] = [];
  for (let i = 0; i < 1 + r.int(2); i++) {
    const protocol = r.chance(0.3) ? 'UDP' : r.chance(0.5) ? 'TCP' : undefined;
    const k = r.int(4);
    const p: Record<string, unknown> = protocol ? { protocol } : {};
    if (k === 0) p.port = r.pick(PORTS);
    if (k === 1) { p.port = r.pick(PORTS); p.endPort = (p.port as number) + r.pick([0, 1, 100, 8000]); }
    if (k === 2) p.port = r.pick(['http', 'dns', 'metrics']);
    out.push(p);
  }
  return out;
}

/** An IPv4 address (or a.b.c.d/n) carried into IPv6 as fd00:eb::/96 plus its 32 bits: the same shapes of blocks and excepts, in the other family. */
function toV6(text: string): string {
  const [ip, len] = text.split('/');
  const [a, b, c, d] = ip!.split('.').map(Number) as [number, number, number, number];
  const hex = (x: number, y: number) => ((x << 8) | y).toString(16);
  return `fd00:eb::${hex(a, b)}:${hex(c, d)}${len === undefined ? '' : `/${96 + Number(len)}`}`;
}

function randPeers(r: Rng, ips: string[], dual: boolean): unknown[] | undefined {
  if (r.chance(0.2)) return undefined;
  const peers: unknown[] = [];
  for (let i = 0; i < 1 + r.int(2); i++) {
    const k = r.int(4);
    if (k === 0) peers.push({ podSelector: randSelector(r) });
    else if (k === 1) peers.push({ namespaceSelector: randSelector(r) });
    else if (k === 2) peers.push({ podSelector: randSelector(r), namespaceSelector: randSelector(r) });
    else {
      const block = randCidr(r, ips);
      // A dual-stack world's blocks are of either family.
      peers.push({ ipBlock: dual && r.chance(0.5) ? { cidr: toV6(block.cidr), ...(block.except ? { except: block.except.map(toV6) } : {}) } : block });
    }
  }
  return peers;
}

/** Named ports follow labels, so workloads of one identity agree on them. */
function portsFor(labels: Record<string, string>) {
  return [
    { name: 'http', containerPort: labels.app === 'a' ? 80 : 8080, protocol: 'TCP' as const },
    { name: 'dns', containerPort: 53, protocol: labels.tier === 'b' ? 'TCP' as const : 'UDP' as const },
    ...(labels.env ? [{ name: 'metrics', containerPort: 9000, protocol: 'TCP' as const }] : []),
  ];
}

function randWorld(r: Rng, dual = false): PolicyWorld {
  const namespaces: NamespaceResource[] = NSS.map((n) => Namespace.parse({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n, labels: randLabels(r) } }));
  const workloads: WorkloadResource[] = [];
  const count = 4 + r.int(7);
  for (let i = 0; i < count; i++) {
    const labels = randLabels(r);
    workloads.push(Workload.parse({
      apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload',
      metadata: { name: `w${i}`, namespace: r.pick(NSS), labels },
      // Addresses cluster in a few /24s so blocks and excepts hit several of them.
      spec: { ...(r.chance(0.9) ? { ip: `10.${r.int(2)}.${r.int(2)}.${10 + i}` } : {}), ports: portsFor(labels), command: ['true'] },
    }));
    const w = workloads[workloads.length - 1]!;
    if (dual && w.spec.ip && r.chance(0.8)) w.spec.ipv6 = toV6(w.spec.ip);
  }
  const ips = workloads.flatMap((w) => (w.spec.ip ? [w.spec.ip] : []));
  const policies = [];
  for (let i = 0, n = r.int(5); i < n; i++) {
    const spec: Record<string, unknown> = { podSelector: randSelector(r) };
    if (r.chance(0.5)) spec.policyTypes = r.pick([['Ingress'], ['Egress'], ['Ingress', 'Egress']]);
    const rules = (dir: 'from' | 'to') => Array.from({ length: r.int(3) }, () => {
      const rule: Record<string, unknown> = {};
      const peers = randPeers(r, ips, dual);
      const ports = randPorts(r);
      if (peers) rule[dir] = peers;
      if (ports) rule.ports = ports;
      return rule;
    });
    if (r.chance(0.7)) spec.ingress = rules('from');
    if (r.chance(0.6)) spec.egress = rules('to');
    const input = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: `p${i}`, namespace: r.pick(NSS) }, spec } as NetworkPolicyInput;
    policies.push(NetworkPolicy.parse(input));
  }
  return { namespaces, workloads, policies };
}

test('compiled tables agree with the spec on random worlds', () => {
  const r = rng(0x5eed);
  let flows = 0;
  let allowed = 0;
  let entries = 0;
  for (let round = 0; round < 200; round++) {
    const world = randWorld(r);
    const tables = compilePolicies({ ...world, identities: allocateIdentities(undefined, world.workloads, { now: 0 }) });
    assert.deepEqual(tables.warnings, [], `round ${round}`);
    entries += tables.allow.length + tables.cidr.length;
    const kernel = new PolicyTables(tables);
    const ends: Endpoint[] = [
      ...world.workloads.map((w) => (w.spec.ip && r.chance(0.5) ? { ip: w.spec.ip } : { workload: `${w.metadata.namespace}/${w.metadata.name}` })),
      ...OUTSIDE.map((ip) => ({ ip })),
      { ip: '10.0.1.250' },
    ];
    for (const from of ends) for (const to of ends) for (const port of PORTS) for (const proto of ['TCP', 'UDP'] as const) {
      const flow: Flow = { from, to, proto, port };
      const k = kernel.verdict(flow);
      const s = evaluateSpec(world, flow);
      flows++;
      if (k.allowed) allowed++;
      if (k.egress.allowed !== s.egress.allowed || k.ingress.allowed !== s.ingress.allowed) {
        assert.fail(`round ${round}: ${JSON.stringify(flow)}\nkernel: ${JSON.stringify(k)}\nspec: ${JSON.stringify(s)}\npolicies: ${JSON.stringify(world.policies)}\nworkloads: ${JSON.stringify(world.workloads.map((w) => [w.metadata, w.spec.ip]))}`);
      }
    }
  }
  // Guard against a generator that only ever produces "allow all" or "deny all".
  assert.ok(flows > 60_000, `flows ${flows}`);
  assert.ok(allowed / flows > 0.2 && allowed / flows < 0.95, `allowed ratio ${allowed / flows}`);
  assert.ok(entries > 1000, `entries ${entries}`);
});

test('compiled tables agree with the spec on random dual-stack worlds, flows of both families', () => {
  const r = rng(0x6eed);
  let flows = 0;
  let allowed = 0;
  let cidr6 = 0;
  for (let round = 0; round < 80; round++) {
    const world = randWorld(r, true);
    const tables = compilePolicies({ ...world, identities: allocateIdentities(undefined, world.workloads, { now: 0 }) });
    assert.deepEqual(tables.warnings, [], `round ${round}`);
    cidr6 += tables.cidr.filter((c) => c.family === 6).length;
    const kernel = new PolicyTables(tables);
    for (const family of [4, 6] as const) {
      const addr = (ip: string) => (family === 6 ? toV6(ip) : ip);
      const ends: Endpoint[] = [
        ...world.workloads.map((w) => {
          const ip = family === 6 ? w.spec.ipv6 : w.spec.ip;
          return ip && r.chance(0.5) ? { ip } : { workload: `${w.metadata.namespace}/${w.metadata.name}` };
        }),
        ...OUTSIDE.map((ip) => ({ ip: addr(ip) })),
        { ip: addr('10.0.1.250') },
      ];
      for (const from of ends) for (const to of ends) for (const port of [80, 8080]) for (const proto of ['TCP', 'UDP'] as const) {
        const flow: Flow = { from, to, proto, port, family };
        const k = kernel.verdict(flow);
        const s = evaluateSpec(world, flow);
        flows++;
        if (k.allowed) allowed++;
        if (k.egress.allowed !== s.egress.allowed || k.ingress.allowed !== s.ingress.allowed) {
          assert.fail(`round ${round}: ${JSON.stringify(flow)}\nkernel: ${JSON.stringify(k)}\nspec: ${JSON.stringify(s)}\npolicies: ${JSON.stringify(world.policies)}\nworkloads: ${JSON.stringify(world.workloads.map((w) => [w.metadata, w.spec.ip, w.spec.ipv6]))}`);
        }
      }
    }
  }
  assert.ok(flows > 20_000, `flows ${flows}`);
  assert.ok(allowed / flows > 0.2 && allowed / flows < 0.95, `allowed ratio ${allowed / flows}`);
  assert.ok(cidr6 > 25, `IPv6 regions ${cidr6}`);
});
