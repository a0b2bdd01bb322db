/**
 * NetworkPolicy conformance cases as data, modelled on the upstream
 * Kubernetes network-policy e2e suite: three namespaces x, y, z (labels
 * ns=<name>), each with workloads a, b, c (labels pod=<name>), each serving
 * TCP and UDP on 80 and 81 with named ports serve-<port>-<tcp|udp>.
 *
 * A case is a sequence of steps; each step gives the *whole* desired state
 * (every policy in force, plus label overrides) and the expected 9x9
 * reachability per probe. Steps are declarative so a replayer can apply
 * them by diffing, which exercises policy update, delete and label changes.
 * The unit tests replay them against both evaluators; the kernel
 * conformance suite replays them against real network namespaces, using
 * `caseWorld` for the resources (it may replace `command`, but must keep
 * names, labels, addresses and ports, because ipBlock cases use the
 * addresses).
 *
 * Grid: row = from, column = to, both in POD order; "." = reachable,
 * "X" = blocked. The diagonal is always "." (a pod can reach itself).
 */
import type { z } from 'zod';
import type { Namespace, Workload } from '../resources/schemas.js';
import type { NetworkPolicyInput } from '../resources/networkpolicy.js';

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const POD_NAMES = ['a', 'b', 'c'] as const;
export const PODS = ['x/a', 'x/b', 'x/c', 'y/a', 'y/b', 'y/c', 'z/a', 'z/b', 'z/c'] as const;
export type Pod = (typeof PODS)[number];
export const PROBES = ['TCP/80', 'TCP/81', 'UDP/80', 'UDP/81'] as const;
export type Probe = (typeof PROBES)[number];
export const SERVED_PORTS = [80, 81] as const;

/** Nine rows of nine characters, "." reachable, "X" blocked. */
export type Grid = readonly string[];

export interface CaseStep {
  note: string;
  /** Every policy in force at this step (absent from the list = deleted). */
  policies: NetworkPolicyInput[];
  /** Pods whose labels differ from the base world, with their full label set. */
  podLabels?: Partial<Record<Pod, Record<string, string>>>;
  /** Namespaces whose labels differ from the base world, with their full label set. */
  namespaceLabels?: Partial<Record<(typeof NAMESPACES)[number], Record<string, string>>>;
  expect: Record<Probe, Grid>;
}

export interface PolicyCase {
  name: string;
  /** The upstream e2e test this follows, when there is one. */
  upstream?: string;
  steps: CaseStep[];
}

/** The address of a pod: namespace index -> third octet, pod index -> 10 + i. */
export function podIp(pod: Pod): string {
  const [ns, name] = pod.split('/') as [string, string];
  return `10.244.${NAMESPACES.indexOf(ns as never) + 1}.${10 + POD_NAMES.indexOf(name as never)}`;
}

export const namespaceCidr = (ns: (typeof NAMESPACES)[number]): string => `10.244.${NAMESPACES.indexOf(ns) + 1}.0/24`;

/** The resources of a step's world, as a user would write them (pre-validation). */
export function caseWorld(step?: Pick<CaseStep, 'podLabels' | 'namespaceLabels'>): { namespaces: z.input<typeof Namespace>[]; workloads: z.input<typeof Workload>[] } {
  const namespaces = NAMESPACES.map((ns) => ({
    apiVersion: 'v1' as const, kind: 'Namespace' as const,
    metadata: { name: ns, labels: step?.namespaceLabels?.[ns] ?? { ns } },
  }));
  const workloads = PODS.map((pod) => {
    const [ns, name] = pod.split('/') as [string, string];
    return {
      apiVersion: 'ebmesh.io/v1alpha1' as const, kind: 'Workload' as const,
      metadata: { name, namespace: ns, labels: step?.podLabels?.[pod] ?? { pod: name } },
      spec: {
        ip: podIp(pod),
        ports: SERVED_PORTS.flatMap((port) => (['TCP', 'UDP'] as const).map((protocol) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, containerPort: port, protocol }))),
        command: ['ebmesh-lab-serve', '--tcp', '80,81', '--udp', '80,81'],
      },
    };
  });
  return { namespaces, workloads };
}

// ---- terse builders: the data below stays readable ----

type Spec = NetworkPolicyInput['spec'];
const np = (name: string, spec: Spec, namespace = 'x'): NetworkPolicyInput => ({
  apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec,
});
const pod = (p: string) => ({ matchLabels: { pod: p } });
const nsSel = (n: string) => ({ matchLabels: { ns: n } });
const same = (g: Grid): Record<Probe, Grid> => ({ 'TCP/80': g, 'TCP/81': g, 'UDP/80': g, 'UDP/81': g });
const only = (probes: Probe[], yes: Grid, no: Grid): Record<Probe, Grid> =>
  Object.fromEntries(PROBES.map((p) => [p, probes.includes(p) ? yes : no])) as Record<Probe, Grid>;

//                           to: xa xb xc ya yb yc za zb zc
const ALL: Grid = [
  '.........', '.........', '.........',
  '.........', '.........', '.........',
  '.........', '.........', '.........',
];
/** Nothing reaches x's pods, except themselves. */
const DENY_INGRESS_X: Grid = [
  '.XX......', 'X.X......', 'XX.......',
  'XXX......', 'XXX......', 'XXX......',
  'XXX......', 'XXX......', 'XXX......',
];
/** x's pods reach nothing, except themselves. */
const DENY_EGRESS_X: Grid = [
  '.XXXXXXXX', 'X.XXXXXXX', 'XX.XXXXXX',
  '.........', '.........', '.........',
  '.........', '.........', '.........',
];
/** Only x/a is unreachable (from everyone else). */
const DENY_INGRESS_XA: Grid = [
  '.........', 'X........', 'X........',
  'X........', 'X........', 'X........',
  'X........', 'X........', 'X........',
];
/** Only x/a can send nowhere (but to itself). */
const DENY_EGRESS_XA: Grid = [
  '.XXXXXXXX', '.........', '.........',
  '.........', '.........', '.........',
  '.........', '.........', '.........',
];

export const policyCases: PolicyCase[] = [
  {
    name: 'default deny ingress',
    upstream: "should support a 'default-deny-ingress' policy",
    steps: [
      { note: 'explicit policyTypes', policies: [np('deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] })], expect: same(DENY_INGRESS_X) },
      { note: 'policyTypes omitted defaults to Ingress', policies: [np('deny-ingress', { podSelector: {} })], expect: same(DENY_INGRESS_X) },
    ],
  },
  {
    name: 'default deny egress',
    upstream: "should enforce multiple egress policies with egress allow-all policy taking precedence / default-deny-egress",
    steps: [
      { note: 'policyTypes Egress', policies: [np('deny-egress', { podSelector: {}, policyTypes: ['Egress'] })], expect: same(DENY_EGRESS_X) },
      { note: 'and ingress: both directions', policies: [np('deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })],
        expect: same(['.XXXXXXXX', 'X.XXXXXXX', 'XX.XXXXXX', 'XXX......', 'XXX......', 'XXX......', 'XXX......', 'XXX......', 'XXX......']) },
    ],
  },
  {
    name: 'policyTypes defaulting',
    upstream: 'API defaulting of NetworkPolicy.spec.policyTypes',
    steps: [
      { note: '`egress: []` alone does not add Egress', policies: [np('empty-egress', { podSelector: {}, egress: [] })], expect: same(DENY_INGRESS_X) },
      { note: 'an egress rule adds Egress; allow-all egress, no ingress rules', policies: [np('egress-rule', { podSelector: {}, egress: [{}] })], expect: same(DENY_INGRESS_X) },
      { note: 'ingress rules are ignored when policyTypes is only Egress',
        policies: [np('egress-only', { podSelector: pod('a'), policyTypes: ['Egress'], ingress: [{}] })], expect: same(DENY_EGRESS_XA) },
    ],
  },
  {
    name: 'allow all',
    upstream: 'should support allow-all policy',
    steps: [
      { note: 'deny-all plus allow-all ingress: union allows', policies: [np('deny-ingress', { podSelector: {} }), np('allow-all', { podSelector: {}, ingress: [{}] })], expect: same(ALL) },
      { note: 'allow-all egress with deny-all egress', policies: [np('deny-egress', { podSelector: {}, policyTypes: ['Egress'] }), np('allow-all-egress', { podSelector: {}, policyTypes: ['Egress'], egress: [{}] })], expect: same(ALL) },
    ],
  },
  {
    name: 'pod selector',
    upstream: 'should enforce policy to allow traffic from pods within server namespace based on PodSelector',
    steps: [
      { note: 'x/a only from pod=b in x', policies: [np('a-from-b', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] })],
        expect: same(['.........', '.........', 'X........', 'X........', 'X........', 'X........', 'X........', 'X........', 'X........']) },
      { note: 'empty podSelector peer: every pod of the policy namespace only', policies: [np('same-ns', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })],
        expect: same(['.........', '.........', '.........', 'XXX......', 'XXX......', 'XXX......', 'XXX......', 'XXX......', 'XXX......']) },
      { note: 'empty namespaceSelector peer: every pod everywhere', policies: [np('all-ns', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }] }] })], expect: same(ALL) },
    ],
  },
  {
    name: 'namespace selector',
    upstream: 'should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector',
    steps: [
      { note: 'x/a only from namespace ns=y', policies: [np('a-from-y', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: nsSel('y') }] }] })],
        expect: same(['.........', 'X........', 'X........', '.........', '.........', '.........', 'X........', 'X........', 'X........']) },
      { note: 'the implicit kubernetes.io/metadata.name label', policies: [np('a-from-z', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }] }] })],
        expect: same(['.........', 'X........', 'X........', 'X........', 'X........', 'X........', '.........', '.........', '.........']) },
    ],
  },
  {
    name: 'pod and namespace selector',
    upstream: 'should enforce policy based on PodSelector and NamespaceSelector / PodSelector or NamespaceSelector',
    steps: [
      { note: 'AND: both selectors in one peer', policies: [np('a-from-b-elsewhere', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] }, podSelector: pod('b') }] }] })],
        expect: same(['.........', 'X........', 'X........', 'X........', '.........', 'X........', 'X........', '.........', 'X........']) },
      { note: 'OR: the same selectors as two peers', policies: [np('a-from-b-or-elsewhere', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] } }, { podSelector: pod('b') }] }] })],
        expect: same(['.........', '.........', 'X........', '.........', '.........', '.........', '.........', '.........', '.........']) },
    ],
  },
  {
    name: 'matchExpressions',
    upstream: 'should enforce policy based on PodSelector with MatchExpressions',
    steps: [
      { note: 'subject In [a, b], peer NotIn [c]', policies: [np('ab-from-not-c', { podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['a', 'b'] }] }, ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'NotIn', values: ['c'] }] } }] }] })],
        expect: same(['.........', '.........', 'XX.......', 'XX.......', 'XX.......', 'XX.......', 'XX.......', 'XX.......', 'XX.......']) },
      { note: 'DoesNotExist selects no pod here', policies: [np('no-pod-label', { podSelector: { matchExpressions: [{ key: 'pod', operator: 'DoesNotExist' }] } })], expect: same(ALL) },
      { note: 'Exists on namespaces AND pod=c', policies: [np('a-from-any-c', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'Exists' }] }, podSelector: pod('c') }] }] })],
        expect: same(['.........', 'X........', '.........', 'X........', 'X........', '.........', 'X........', 'X........', '.........']) },
    ],
  },
  {
    name: 'named ports',
    upstream: 'should allow ingress access on one named port / should allow egress access on one named port',
    steps: [
      { note: 'ingress on serve-81-tcp only', policies: [np('allow-81', { podSelector: {}, ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })], expect: only(['TCP/81'], ALL, DENY_INGRESS_X) },
      { note: 'the name with the other protocol resolves to nothing', policies: [np('allow-81', { podSelector: {}, ingress: [{ ports: [{ port: 'serve-81-tcp', protocol: 'UDP' }] }] })], expect: same(DENY_INGRESS_X) },
      { note: 'egress to serve-80-udp on any destination workload', policies: [np('a-egress-named', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ ports: [{ port: 'serve-80-udp', protocol: 'UDP' }] }] })], expect: only(['UDP/80'], ALL, DENY_EGRESS_XA) },
      { note: 'egress named port resolved on the peers of one namespace', policies: [np('a-egress-y-81', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: nsSel('y') }], ports: [{ port: 'serve-81-tcp' }] }] })],
        expect: only(['TCP/81'], ['.XX...XXX', '.........', '.........', '.........', '.........', '.........', '.........', '.........', '.........'], DENY_EGRESS_XA) },
    ],
  },
  {
    name: 'endPort',
    upstream: 'should enforce ingress policy allowing any port traffic to a server on a specific protocol / Ports range (endPort)',
    steps: [
      { note: 'TCP 81-90 to x/a', policies: [np('a-range', { podSelector: pod('a'), ingress: [{ ports: [{ protocol: 'TCP', port: 81, endPort: 90 }] }] })], expect: only(['TCP/81'], ALL, DENY_INGRESS_XA) },
      { note: 'TCP 79-80 to x/a', policies: [np('a-range', { podSelector: pod('a'), ingress: [{ ports: [{ protocol: 'TCP', port: 79, endPort: 80 }] }] })], expect: only(['TCP/80'], ALL, DENY_INGRESS_XA) },
      { note: 'UDP 1-65535 to x/a', policies: [np('a-range', { podSelector: pod('a'), ingress: [{ ports: [{ protocol: 'UDP', port: 1, endPort: 65535 }] }] })], expect: only(['UDP/80', 'UDP/81'], ALL, DENY_INGRESS_XA) },
    ],
  },
  {
    name: 'ipBlock',
    upstream: 'should allow egress access to server in CIDR block / should enforce except clause while egress access to server in CIDR block',
    steps: [
      { note: 'egress to the pod CIDR except namespace y', policies: [np('a-egress-cidr', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.244.0.0/16', except: [namespaceCidr('y')] } }] }] })],
        expect: same(['...XXX...', '.........', '.........', '.........', '.........', '.........', '.........', '.........', '.........']) },
      { note: 'egress to one pod address /32', policies: [np('a-egress-yb', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${podIp('y/b')}/32` } }] }] })],
        expect: same(['.XXX.XXXX', '.........', '.........', '.........', '.........', '.........', '.........', '.........', '.........']) },
      { note: 'ingress from namespace y CIDR except y/b', policies: [np('a-from-cidr', { podSelector: pod('a'), ingress: [{ from: [{ ipBlock: { cidr: namespaceCidr('y'), except: [`${podIp('y/b')}/32`] } }] }] })],
        expect: same(['.........', 'X........', 'X........', '.........', 'X........', '.........', 'X........', 'X........', 'X........']) },
      { note: 'another rule re-allows the excepted pod (rules are a union)', policies: [np('a-from-cidr', { podSelector: pod('a'), ingress: [
        { from: [{ ipBlock: { cidr: namespaceCidr('y'), except: [`${podIp('y/b')}/32`] } }] },
        { from: [{ namespaceSelector: nsSel('y'), podSelector: pod('b') }] },
      ] })],
        expect: same(['.........', 'X........', 'X........', '.........', '.........', '.........', 'X........', 'X........', 'X........']) },
      { note: 'nested blocks with different ports: the narrower block keeps the wider one\'s ports', policies: [np('a-from-nested', { podSelector: pod('a'), ingress: [
        { from: [{ ipBlock: { cidr: '10.244.0.0/16' } }], ports: [{ port: 80 }] },
        { from: [{ ipBlock: { cidr: namespaceCidr('y') } }], ports: [{ port: 81 }] },
      ] })],
        expect: {
          'TCP/80': ALL,
          'TCP/81': ['.........', 'X........', 'X........', '.........', '.........', '.........', 'X........', 'X........', 'X........'],
          'UDP/80': DENY_INGRESS_XA,
          'UDP/81': DENY_INGRESS_XA,
        } },
    ],
  },
  {
    name: 'multiple policies union',
    upstream: 'should enforce multiple, stacked policies with overlapping podSelectors',
    steps: [
      { note: 'from pod=b (x) or from ns=y', policies: [
        np('a-from-b', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] }),
        np('a-from-y', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: nsSel('y') }] }] }),
      ], expect: same(['.........', '.........', 'X........', '.........', '.........', '.........', 'X........', 'X........', 'X........']) },
      { note: 'port-specific policies add up per port', policies: [
        np('a-80-from-b', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80 }] }] }),
        np('a-81-from-c', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('c') }], ports: [{ port: 81 }] }] }),
      ], expect: {
        'TCP/80': ['.........', '.........', 'X........', 'X........', 'X........', 'X........', 'X........', 'X........', 'X........'],
        'TCP/81': ['.........', 'X........', '.........', 'X........', 'X........', 'X........', 'X........', 'X........', 'X........'],
        'UDP/80': DENY_INGRESS_XA,
        'UDP/81': DENY_INGRESS_XA,
      } },
    ],
  },
  {
    name: 'policy update and delete',
    upstream: 'should allow ingress access from updated pod / should stop enforcing policies after they are deleted',
    steps: [
      { note: 'deny all ingress in x', policies: [np('x-policy', { podSelector: {} })], expect: same(DENY_INGRESS_X) },
      { note: 'the same policy updated to allow from pod=b', policies: [np('x-policy', { podSelector: {}, ingress: [{ from: [{ podSelector: pod('b') }] }] })],
        expect: same(['.XX......', '.........', 'XX.......', 'XXX......', 'XXX......', 'XXX......', 'XXX......', 'XXX......', 'XXX......']) },
      { note: 'deleted', policies: [], expect: same(ALL) },
    ],
  },
  {
    name: 'label changes',
    upstream: 'should allow ingress access from updated pod / should deny ingress access to updated pod',
    steps: [
      { note: 'x/a only from pod=b', policies: [np('a-from-b', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] })],
        expect: same(['.........', '.........', 'X........', 'X........', 'X........', 'X........', 'X........', 'X........', 'X........']) },
      { note: 'x/c relabelled pod=b becomes an allowed peer', policies: [np('a-from-b', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] })],
        podLabels: { 'x/c': { pod: 'b' } },
        expect: same(['.........', '.........', '.........', 'X........', 'X........', 'X........', 'X........', 'X........', 'X........']) },
      { note: 'x/b relabelled pod=a becomes a subject (and no longer a peer)', policies: [np('a-from-b', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] })],
        podLabels: { 'x/b': { pod: 'a' }, 'x/c': { pod: 'b' } },
        expect: same(['.X.......', 'X........', '.........', 'XX.......', 'XX.......', 'XX.......', 'XX.......', 'XX.......', 'XX.......']) },
      { note: 'namespace z relabelled ns=y matches a namespaceSelector', policies: [np('a-from-y', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: nsSel('y') }] }] })],
        namespaceLabels: { z: { ns: 'y' } },
        expect: same(['.........', 'X........', 'X........', '.........', '.........', '.........', '.........', '.........', '.........']) },
    ],
  },
  {
    name: 'protocol',
    upstream: 'should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector (UDP) / SCTP-less variant',
    steps: [
      { note: 'a UDP-only allow must not allow TCP', policies: [np('deny', { podSelector: {} }), np('udp-80', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP', port: 80 }] }] })],
        expect: only(['UDP/80'], ALL, DENY_INGRESS_X) },
      { note: 'a port entry without a port: every port of its protocol', policies: [np('udp-any', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP' }] }] })],
        expect: only(['UDP/80', 'UDP/81'], ALL, DENY_INGRESS_X) },
      { note: 'protocol defaults to TCP, also without a port', policies: [np('tcp-any', { podSelector: {}, ingress: [{ ports: [{}] }] })],
        expect: only(['TCP/80', 'TCP/81'], ALL, DENY_INGRESS_X) },
    ],
  },
  {
    name: 'both sides must allow',
    upstream: 'should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector',
    steps: [
      { note: 'x/a may send only to y/b, but y/b admits only namespace z', policies: [
        np('a-to-yb', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: nsSel('y'), podSelector: pod('b') }] }] }),
        np('b-from-z', { podSelector: pod('b'), ingress: [{ from: [{ namespaceSelector: nsSel('z') }] }] }, 'y'),
      ], expect: same(['.XXXXXXXX', '....X....', '....X....', '....X....', '.........', '....X....', '.........', '.........', '.........']) },
      { note: 'y/b also admits x/a: now it gets through', policies: [
        np('a-to-yb', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: nsSel('y'), podSelector: pod('b') }] }] }),
        np('b-from-z', { podSelector: pod('b'), ingress: [{ from: [{ namespaceSelector: nsSel('z') }, { namespaceSelector: nsSel('x'), podSelector: pod('a') }] }] }, 'y'),
      ], expect: same(['.XXX.XXXX', '....X....', '....X....', '....X....', '.........', '....X....', '.........', '.........', '.........']) },
    ],
  },
];
