/**
 * The resource parser and validator: YAML text in, resources or a
 * ResourceError out (parseResources), then the control plane's apply on a
 * store of its own (cross-checks, VIP and pod IP allocation).
 *
 * Inputs: the corpus's resources (test/fuzz/corpus/resources) with one
 * field changed, removed or added anywhere in their tree, resources made
 * from scratch, and the corpus's text cut, spliced and sprinkled with odd
 * bytes. What must hold: parsing ends within a second and either returns
 * resources or throws a ResourceError whose every problem names the file
 * (and, with a line, the line); apply either succeeds or throws an
 * EbmeshError with a catalogued code and changes nothing in the store.
 */
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { EbmeshError } from '../../../src/errors.js';
import { kinds, parseResources, ResourceError } from '../../../src/resources/index.js';
import { applyResources } from '../../../src/controlplane/apply.js';
import { EmbeddedStore } from '../../../src/store/index.js';
import type { FuzzTarget } from '../fuzz.js';

const FILE = 'fuzz.yaml';

interface Ctx { dir: string; n: number }

/** Odd values a field may be given. */
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', ' ', '-1', '0', '65536', '1e309', 'NaN', '10.96.0.1', '10.96.0.0/12', '256.1.1.1', '::1', '*', 'a'.repeat(300), '$(X)', '\u0000', 'é', '../x', '1s', '-5ms', '99999999999d'),
  fc.integer(), fc.double(), fc.boolean(), fc.constant(null),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 4 }),
);

type Path = Array<string | number>;

/** Every path to a value in a tree (the root excluded). */
function paths(v: unknown, base: Path = [], out: Path[] = []): Path[] {
  if (v && typeof v === 'object') {
    for (const [k, c] of Array.isArray(v) ? v.entries() : Object.entries(v)) {
      const p = [...base, k];
      out.push(p);
      paths(c, p, out);
    }
  }
  return out;
}

function mutate(doc: unknown, pick: number, op: 'set' | 'delete' | 'add', value: unknown, key: string): unknown {
  const copy = structuredClone(doc) as Record<string | number, unknown>;
  const all = paths(copy);
  if (!all.length) return value;
  const path = all[pick % all.length]!;
  let parent: Record<string | number, unknown> = copy;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  if (op === 'set') parent[last] = value;
  else if (op === 'delete') {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else {
    const target = parent[last];
    if (target && typeof target === 'object' && !Array.isArray(target)) (target as Record<string, unknown>)[key] = value;
    else parent[last] = { [key]: value };
  }
  return copy;
}

const fromScratch = fc.record({
  apiVersion: fc.constantFrom('v1', 'ebmesh.io/v1alpha1', 'networking.k8s.io/v1', 'gateway.networking.k8s.io/v1', 'x/y'),
  kind: fc.oneof(fc.constantFrom(...Object.keys(kinds)), fc.string({ maxLength: 12 })),
  metadata: fc.record({ name: fc.oneof(fc.constantFrom('web', 'a-b', ''), fc.string({ maxLength: 70 })), namespace: fc.option(fc.constantFrom('default', 'demo', 'UPPER', 'x_y'), { nil: undefined }), labels: fc.option(fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 3 }), { nil: undefined }) }, { requiredKeys: [] }),
  spec: fc.option(fc.dictionary(fc.constantFrom('ports', 'selector', 'command', 'ip', 'clusterIP', 'rules', 'podSelector', 'ingress', 'egress', 'parentRefs', 'targetRef', 'serviceCIDR', 'files', 'adopt'), oddValue, { maxKeys: 4 }), { nil: undefined }),
}, { requiredKeys: [] });

/** Text edits: a cut, a splice of two seeds, odd bytes at a few places. */
function textEdits(seeds: string[]): fc.Arbitrary<string> {
  const seed = fc.constantFrom(...seeds);
  return fc.oneof(
    fc.tuple(seed, fc.nat()).map(([s, n]) => s.slice(0, n % (s.length + 1))),
    fc.tuple(seed, seed, fc.nat(), fc.nat()).map(([a, b, i, j]) => a.slice(0, i % (a.length + 1)) + b.slice(j % (b.length + 1))),
    fc.tuple(seed, fc.array(fc.tuple(fc.nat(), fc.constantFrom('\t', '\r', '\n', ': ', '- ', '{', '}', '[', ']', '&a', '*a', '<<: *a', '!!binary', '---\n', '\u0000', '"', "'", '#', '%YAML 1.2\n', 'é', '\ufeff', ' '.repeat(40))), { maxLength: 4 }))
      .map(([s, edits]) => edits.reduce((t, [at, what]) => { const i = at % (t.length + 1); return t.slice(0, i) + what + t.slice(i); }, s)),
  );
}

export const resourcesTarget: FuzzTarget<string, Ctx> = {
  name: 'resources',
  what: 'YAML → parseResources → applyResources on a fresh store: resources, or an error naming file, line and field, and nothing changed',
  async setup() {
    return { dir: mkdtempSync(join('/dev/shm', `ebmesh-fuzz-resources-${process.pid}-`)), n: 0 };
  },
  async teardown(ctx) {
    rmSync(ctx.dir, { recursive: true, force: true });
  },
  seed: (text) => text,
  inputs(seeds) {
    const docs = seeds.flatMap((s) => { try { return (s.split(/^---$/m).map((d) => parseYaml(d) as unknown)).filter(Boolean); } catch { return []; } });
    const structural = fc.tuple(fc.constantFrom(...docs), fc.nat(), fc.constantFrom('set', 'delete', 'add') as fc.Arbitrary<'set' | 'delete' | 'add'>, oddValue, fc.string({ maxLength: 12 }))
      .map(([d, pick, op, value, key]) => stringify(mutate(d, pick, op, value, key)));
    const many = fc.array(fc.oneof(structural, fromScratch.map((d) => stringify(d))), { minLength: 1, maxLength: 3 }).map((ds) => ds.join('---\n'));
    return fc.oneof({ arbitrary: structural, weight: 4 }, { arbitrary: many, weight: 2 }, { arbitrary: fromScratch.map((d) => stringify(d)), weight: 1 }, { arbitrary: textEdits(seeds), weight: 2 });
  },
  async check(ctx, text) {
    const t0 = performance.now();
    let resources;
    try {
      resources = parseResources(text, FILE);
    } catch (e) {
      if (!(e instanceof ResourceError)) throw new Error(`parseResources threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
      if (!e.problems.length) throw new Error('a ResourceError without problems');
      for (const p of e.problems) {
        if (p.file !== FILE || !p.message) throw new Error(`a problem that does not say where or what: ${JSON.stringify(p)}`);
        if (p.line !== undefined && (!Number.isInteger(p.line) || p.line < 1)) throw new Error(`a problem at line ${p.line}`);
      }
      if (!e.message.startsWith(FILE)) throw new Error(`the message does not start with the file: ${e.message.slice(0, 80)}`);
      return;
    } finally {
      const ms = performance.now() - t0;
      if (ms > 1000) throw new Error(`hang: parsing took ${ms.toFixed(0)} ms`);
    }
    const store = new EmbeddedStore(join(ctx.dir, `store-${ctx.n++}.json`));
    try {
      try {
        await applyResources(store, resources, FILE);
      } catch (e) {
        if (!(e instanceof EbmeshError)) throw new Error(`applyResources threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.stack}`);
        if (!e.message) throw new Error(`${e.code} without a message`);
        if (await store.revision() !== 0) throw new Error(`a refused apply changed the store (revision ${await store.revision()})`);
      }
    } finally {
      await store.close();
      rmSync(join(ctx.dir, `store-${ctx.n - 1}.json`), { force: true });
    }
  },
};
