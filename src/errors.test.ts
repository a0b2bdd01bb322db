import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES, EbmeshError, httpStatusOf, isErrorCode } from './errors.js';
import { PACKAGE_ROOT } from './paths.js';

test('docs/errors.md lists exactly the catalogue, with the same status and meaning', () => {
  const rows = readFileSync(join(PACKAGE_ROOT, 'docs/errors.md'), 'utf8').split('\n')
    .map((l) => /^\| `(EBMESH_[A-Z0-9_]+)` \| (\d+) \| (.+) \|$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [m[1]!, { status: Number(m[2]), meaning: m[3]! }] as const);
  assert.deepEqual(Object.fromEntries(rows), ERROR_CODES);
});

test('every code the source raises is in the catalogue', () => {
  const used = new Set<string>();
  const walk = (dir: string) => {
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) {
        for (const m of readFileSync(p, 'utf8').matchAll(/new (?:Ebmesh|Kernel)Error\('(EBMESH_[A-Z0-9_]+)'/g)) used.add(m[1]!);
      }
    }
  };
  walk(join(PACKAGE_ROOT, 'src'));
  walk(join(PACKAGE_ROOT, 'bench'));
  const unknown = [...used].filter((c) => !isErrorCode(c));
  assert.deepEqual(unknown, []);
  assert.ok(used.size > 20, `found ${used.size} codes raised: the scan itself works`);
});

test('an API error answers with the status the catalogue gives its code', () => {
  assert.equal(httpStatusOf(new EbmeshError('EBMESH_NOT_FOUND', 'x')), 404);
  assert.equal(httpStatusOf(new EbmeshError('EBMESH_FORBIDDEN', 'x')), 403);
  assert.equal(httpStatusOf(new Error('a bug')), 500);
});
