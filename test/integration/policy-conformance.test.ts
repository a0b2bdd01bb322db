/**
 * NetworkPolicy conformance, for real: the upstream e2e cases (src/policy/
 * cases.ts) replayed against a running mesh. Nine lab workloads serve TCP
 * and UDP on 80 and 81; for every step of every case the policies are
 * applied through the CLI and each workload probes all nine (itself
 * included) on the four ports at once. The full 9x9 grid per probe must
 * match, and a denied TCP connect between workloads must fail at once
 * (EPERM from connect), never as a hanging SYN.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PODS, PROBES, caseWorld, policyCases, type Grid, type Pod, type Probe } from '../fixtures/policy-cases.js';
import { checkNamedPorts } from '../../src/policy/index.js';
import { NetworkPolicy } from '../../src/resources/networkpolicy.js';
import { Namespace, Workload } from '../../src/resources/schemas.js';
import { TestMesh } from '../helpers/mesh.js';
import { PolicyLab } from '../helpers/policy-lab.js';

let mesh: TestMesh;
let lab: PolicyLab;

before(async () => {
  mesh = new TestMesh('polconf');
  lab = new PolicyLab(mesh);
  mesh.ok('up', '-f', mesh.meshConfigFile(), '-f', mesh.file('world.yaml', lab.worldYaml()));
  await lab.waitReady();
});

after(() => mesh?.down());

const specOf = (ip: string, probe: Probe) => { const [proto, port] = probe.split('/'); return `${ip}:${port}/${proto}`; };

function show(g: readonly string[]): string {
  return ['      ' + PODS.map((p) => p.replace('/', '')).join(' '), ...g.map((row, i) => `${PODS[i]!.replace('/', '')}    ${[...row].join('  ')}`)].join('\n');
}

for (const c of policyCases) {
  test(`conformance: ${c.name}`, async (t) => {
    for (const [i, step] of c.steps.entries()) {
      await t.test(`step ${i + 1}: ${step.note}`, async () => {
        // ebmesh refuses a named port no workload declares (Kubernetes accepts
        // it and allows nothing): such a step must be rejected, naming the field.
        const world = caseWorld(step);
        const unresolved = checkNamedPorts(step.policies.map((p) => NetworkPolicy.parse(p)), world.workloads.map((w) => Workload.parse(w)), world.namespaces.map((n) => Namespace.parse(n)));
        const refused = lab.applyStep(step, `${c.name.replace(/\W+/g, '-')}-${i}`);
        if (unresolved.length) {
          assert.ok(refused, 'apply accepted a named port that no workload declares');
          for (const u of unresolved) assert.ok(refused.includes(u.field!), `the error names ${u.field}: ${refused}`);
          return;
        }
        assert.equal(refused, undefined, refused);
        const results = await Promise.all(PODS.map((from) => lab.probe(from, PODS.flatMap((to) => PROBES.map((p) => specOf(lab.ipOf.get(to)!, p))))));
        // A loaded machine can make an allowed UDP answer late: probe those once more, slower.
        await Promise.all(PODS.map(async (from, r) => {
          const again = PODS.flatMap((to, col) => PROBES.filter((p) => step.expect[p][r]![col] === '.' && results[r]![specOf(lab.ipOf.get(to)!, p)] !== 'ok').map((p) => specOf(lab.ipOf.get(to)!, p)));
          if (again.length) Object.assign(results[r]!, await lab.probe(from, again, 3));
        }));
        const problems: string[] = [];
        for (const probe of PROBES) {
          const grid: string[] = PODS.map((_, r) => PODS.map((to) => (results[r]![specOf(lab.ipOf.get(to as Pod)!, probe)] === 'ok' ? '.' : 'X')).join(''));
          const want: Grid = step.expect[probe];
          if (grid.join('\n') !== want.join('\n')) problems.push(`${probe}\nexpected:\n${show(want)}\nactual:\n${show(grid)}`);
          if (probe.startsWith('TCP')) {
            PODS.forEach((from, r) => PODS.forEach((to) => {
              const res = results[r]![specOf(lab.ipOf.get(to)!, probe)];
              if (res !== 'ok' && res !== 'EPERM') problems.push(`${from} -> ${to} ${probe}: denied as "${res}", not at connect (EPERM)`);
            }));
          }
        }
        assert.ok(problems.length === 0, problems.join('\n'));
      });
    }
  });
}

test('every drop was counted with its reason and reported as an event', () => {
  const d = JSON.parse(mesh.ok('policy', 'drops', '-o', 'json')) as { counts: Record<string, number>; events: Array<{ reason: string; policy?: string }> };
  assert.ok((d.counts.policy_ingress ?? 0) > 0 && (d.counts.policy_egress ?? 0) > 0, JSON.stringify(d.counts));
  assert.equal(d.counts.spoofed_source, 0);
  assert.equal(d.counts.no_identity, 0);
  assert.ok(d.events.length > 0 && d.events.every((e) => e.reason.startsWith('policy-') && e.policy), JSON.stringify(d.events.slice(0, 3)));
});
