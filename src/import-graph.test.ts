/**
 * The source's import graph has no cycle: a cycle makes module order
 * decide what is initialised when (an ESM binding read before its module
 * ran is a TDZ error at start), and it blurs which folder depends on which.
 * Imports of types only are left out: they vanish at compile time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { PACKAGE_ROOT } from './paths.js';

const ROOTS = ['src', 'bench', 'test'];
const IMPORT = /^(?:import|export)\s+(?!type\b)[^'"]*?from\s+'(\.[^']+)'|^import\s+'(\.[^']+)'/gm;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath, e.name));
}

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const root of ROOTS) {
    for (const file of sources(join(PACKAGE_ROOT, root))) {
      const deps = [...readFileSync(file, 'utf8').matchAll(IMPORT)].map((m) => normalize(join(dirname(file), (m[1] ?? m[2])!.replace(/\.js$/, '.ts'))));
      g.set(file, deps);
    }
  }
  return g;
}

/** Strongly connected components of more than one module (Tarjan). */
function cycles(g: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(relative(PACKAGE_ROOT, w));
      } while (w !== v);
      if (scc.length > 1) found.push(scc);
    }
  };
  for (const v of g.keys()) if (!index.has(v)) visit(v);
  return found;
}

test('no module imports itself through others', () => {
  const g = graph();
  assert.ok(g.size > 100, `read ${g.size} modules`);
  assert.deepEqual(cycles(g), []);
});
