import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Namespace, Workload } from '../../src/resources/schemas.js';
import { NetworkPolicy } from '../../src/resources/networkpolicy.js';
import { PODS, PROBES, caseWorld, policyCases, type CaseStep, type Grid, type Probe } from '../fixtures/policy-cases.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { allocateIdentities, type IdentityTable } from '../../src/policy/identity.js';
import { evaluateSpec } from '../../src/policy/semantics.js';
import { PolicyTables } from '../../src/policy/verdict.js';
import type { PolicyWorld } from '../../src/policy/world.js';

function worldOf(step: CaseStep): PolicyWorld {
  const raw = caseWorld(step);
  return {
    namespaces: raw.namespaces.map((n) => Namespace.parse(n)),
    workloads: raw.workloads.map((w) => Workload.parse(w)),
    policies: step.policies.map((p) => NetworkPolicy.parse(p)),
  };
}

function gridOf(allowed: (from: string, to: string) => boolean): string[] {
  return PODS.map((f) => PODS.map((t) => (allowed(f, t) ? '.' : 'X')).join(''));
}

function assertGrid(actual: string[], expected: Grid, what: string): void {
  if (actual.join('\n') === expected.join('\n')) return;
  const header = '      ' + PODS.map((p) => p.replace('/', '')).join(' ');
  const show = (g: readonly string[]) => g.map((row, i) => `${PODS[i]!.replace('/', '')}    ` + [...row].join('  ')).join('\n');
  assert.fail(`${what}\nexpected:\n${header}\n${show(expected)}\nactual:\n${header}\n${show(actual)}`);
}

const probeParts = (p: Probe) => { const [proto, port] = p.split('/') as ['TCP' | 'UDP', string]; return { proto, port: Number(port) }; };

test('case grids are 9x9 and reflexive', () => {
  for (const c of policyCases) for (const s of c.steps) for (const p of PROBES) {
    const g = s.expect[p];
    assert.equal(g.length, 9, `${c.name} / ${s.note} / ${p}: rows`);
    g.forEach((row, i) => {
      assert.match(row, /^[.X]{9}$/, `${c.name} / ${s.note} / ${p}: row ${i}`);
      assert.equal(row[i], '.', `${c.name} / ${s.note} / ${p}: a pod always reaches itself`);
    });
  }
});

for (const c of policyCases) {
  test(`case: ${c.name}`, async (t) => {
    // One identity table across the steps, as the control plane keeps it.
    let identities: IdentityTable | undefined;
    for (const [i, step] of c.steps.entries()) {
      await t.test(`step ${i + 1}: ${step.note}`, () => {
        const world = worldOf(step);
        identities = allocateIdentities(identities, world.workloads, { now: i * 1000 });
        const tables = compilePolicies({ ...world, identities });
        assert.deepEqual(tables.warnings, []);
        const kernel = new PolicyTables(tables);
        for (const probe of PROBES) {
          const { proto, port } = probeParts(probe);
          const flow = (f: string, t2: string) => ({ from: { workload: f }, to: { workload: t2 }, proto, port });
          assertGrid(gridOf((f, t2) => kernel.verdict(flow(f, t2)).allowed), step.expect[probe], `compiled tables, ${probe}`);
          assertGrid(gridOf((f, t2) => evaluateSpec(world, flow(f, t2)).allowed), step.expect[probe], `spec evaluator, ${probe}`);
          // The kernel sees addresses, not names: the same answers by IP.
          const byIp = (f: string, t2: string) => {
            const ip = (r: string) => world.workloads.find((w) => `${w.metadata.namespace}/${w.metadata.name}` === r)!.spec.ip!;
            return { from: { ip: ip(f) }, to: { ip: ip(t2) }, proto, port };
          };
          assertGrid(gridOf((f, t2) => kernel.verdict(byIp(f, t2)).allowed), step.expect[probe], `compiled tables by address, ${probe}`);
        }
      });
    }
  });
}
